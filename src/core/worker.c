/*
 * src/core/worker.c - worker threads: the run loop, parking, spawning,
 * running one task, and handing tasks back.
 *
 * The run loop. A worker pops a task and runs it; when the queue is empty
 * it spins briefly (a hand-off that arrives within the spin costs no system
 * call) and then parks on its own semaphore. Idle workers park: 0% CPU at idle.
 *
 * The parking protocol (no lost wake-ups, no system call while busy):
 *   worker, under park_mu:   idle += 1 (seq_cst)
 *                            if queue.pending() (seq_cst read): idle -= 1, run
 *                            else push itself on the parked stack; unlock;
 *                            sleep on its own semaphore
 *   producer, after push:    if idle (seq_cst read) > 0:
 *                              lock park_mu; pop the top worker, idle -= 1;
 *                              unlock; post its semaphore
 * The push's claim (seq_cst CAS on tail) and the worker's increment of idle
 * are both seq_cst, and each thread reads the other's variable after its
 * own write, so in the single total order at least one of them sees the
 * other: either the producer sees idle > 0 and wakes a worker, or the
 * worker sees the task and does not sleep. A producer pays one seq_cst load
 * per submit while workers are busy, and a short lock + one sem_post only
 * when a worker is parked. One wake-up pops one worker, so a burst of
 * submits wakes at most as many workers as there are tasks.
 *
 * Each worker sleeps on its own semaphore rather than all on one condvar:
 * a woken worker does not have to re-take a lock that a thousand others
 * and every producer contend for (measured: a 1000-worker pool with ms
 * tasks went from ~25k to the full 100k tasks/s). The stack is LIFO: the
 * most recently parked (cache-warm) worker runs next, and the ones at the
 * bottom stay idle long enough to expire, which is what idle expiry wants.
 *
 * The same pattern, on pool->waiting and the head CAS, wakes submitters
 * blocked for queue space (sluice__notify_space).
 *
 * Spawning. Workers start lazily: a submit that finds no idle worker, fewer
 * than K alive and none starting starts one (under pool->mu), and each new
 * worker starts the next while at least two tasks are queued (chain
 * spawning, see chain_spawn). `alive` counts workers
 * allowed to take tasks; a worker leaves it (CAS) before it exits, when K
 * shrank below alive (retire) or after idle expiry above min_workers.
 * Since a worker takes a task only while it is counted in alive <= K, no
 * more than K tasks start at once.
 *
 * Exited workers put their pthread_t on pool->zombies. The next worker to
 * exit joins them before it lists itself (so no two threads ever wait on
 * each other), and so do spawning, resize, drain and destroy: every thread
 * is joined, and an expired worker's stack is freed while the pool runs.
 *
 * An expiring worker leaves `alive` with a seq_cst CAS and then re-checks
 * the queue (seq_cst); a producer pushes (seq_cst) and then reads `alive`
 * (seq_cst) to decide whether to start a worker. As with `idle`, one of the
 * two sees the other: the producer starts a worker, or the expiring worker
 * takes its place back and runs the task.
 *
 * Deferred finish. With a queue that has pop_finish (the fair queue) and
 * no overload mode, a worker keeps its task's per-tenant outcome in
 * its run state's `done` and its next pop finishes it under the queue's lock; a worker
 * leaving the loop finishes it first (finish_deferred). The pool's own
 * counters and the worker's status are not deferred.
 *
 * Lock order: pool->mu -> pool->park_mu. Neither is held around user code.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/internal.h"

SLUICE__TLS sluice__run *sluice__tls_worker;

/* How many times an idle worker polls the queue before it parks, at most
 * and at least. The budget adapts per worker: a spin that found work
 * doubles it, one that ended in parking halves it. Under back-to-back load
 * workers keep spinning (a hand-off costs no system call); under paced
 * load (tasks further apart than a spin) they stop burning the CPU that the
 * producers on a small machine need, and park at once. */
#define SPIN_POLLS_MAX 256
#define SPIN_POLLS_MIN 8

static void *worker_main(void *arg);
static void *slab_take_locked(struct sluice_pool *p, size_t bytes);

/* ---- timed waits on the pool clock -------------------------------------- */

void sluice__cond_wait_until(struct sluice_pool *p, pthread_cond_t *cv, pthread_mutex_t *mu,
                             uint64_t deadline_ns)
{
    /* UINT64_MAX is where a saturated "now + duration" lands: no limit. */
    if ((deadline_ns == 0 || deadline_ns == UINT64_MAX) && p->system_clock) {
        pthread_cond_wait(cv, mu);
        return;
    }
    /* A fake clock moves only when a test says so: poll it. */
    struct timespec ts = p->system_clock ? sluice__ts_from_ns(deadline_ns) : sluice__poll_deadline();
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- events and hand-backs ---------------------------------------------- */

void sluice__emit(struct sluice_pool *p, sluice_event_kind kind, unsigned worker, uint64_t old_value,
                  uint64_t new_value, sluice_err err, const char *detail, const sluice_drain_report *drain)
{
    if (!p->cfg.event_handler) {
        return;
    }
    sluice_pool_event ev = {
        .kind = kind,
        .pool_name = p->name,
        .worker_index = worker,
        .old_value = old_value,
        .new_value = new_value,
        .err = err,
        .detail = detail,
        .drain = drain,
    };
    p->cfg.event_handler(&ev, p->cfg.user);
}

void sluice__abandon(struct sluice_pool *p, sluice__task *t, sluice_abandon_reason why)
{
    if (t->on_abandon || p->cfg.abandon_handler) {
        sluice_abandoned a = {
            .fn = t->fn,
            .arg = t->arg,
            .label = t->label,
            .deadline_ns = t->deadline_ns,
            .ctx = t->ctx,
            .reason = why,
        };
        if (t->on_abandon) {
            t->on_abandon(&a); /* the submitter's own task: not the pool owner's */
        } else {
            p->cfg.abandon_handler(&a, p->cfg.user);
        }
    }
    sluice_ctx_release(t->ctx);
    t->ctx = NULL;
}

/* ---- waking ------------------------------------------------------------- */

unsigned sluice__wake(struct sluice_pool *p, unsigned n)
{
    unsigned total = 0;
    while (n > 0) {
        sluice__worker *woken[32];
        unsigned k = 0;
        pthread_mutex_lock(&p->park_mu);
        while (n > 0 && k < 32 && p->parked_top) {
            sluice__worker *w = p->parked_top;
            p->parked_top = w->park_next;
            w->parked = false;
            woken[k++] = w;
            sluice__gauge_dec(&p->idle);
            n--;
        }
        bool more = p->parked_top != NULL;
        pthread_mutex_unlock(&p->park_mu);
        /* Post outside the lock, touching nothing of the worker but its
         * semaphore (slots live as long as the pool). A popped worker is
         * asleep, or timed out and will see parked == false and wait for
         * this post before it goes on. */
        for (unsigned i = 0; i < k; i++) {
            sem_post(&woken[i]->wake);
        }
        total += k;
        if (k < 32 || !more) {
            return total;
        }
    }
    return total;
}

void sluice__wake_all(struct sluice_pool *p)
{
    (void)sluice__wake(p, UINT32_MAX);
}

void sluice__notify_space(struct sluice_pool *p)
{
    /* seq_cst: pairs with the submitter's increment of `waiting` before it
     * reads the depth (pool.c, wait_for_space). Blocked submitters are
     * woken only at or below the low-water mark, and once per crossing of
     * it: `space_signalled` stays set from this broadcast until a waiter
     * goes back to look (it clears the flag, seq_cst, before it reads the
     * depth and sleeps), so the pops that follow a wake-up do not each take
     * mu and signal again while the woken submitters are still on their
     * way (with 4 blocked producers that was ~18% of the CPU samples of a
     * no-op run: mutex, futex and the kernel). Broadcast, not signal: a
     * woken submitter that pushes and leaves never clears the flag, so
     * every waiter must be woken by the one broadcast. */
    if (atomic_load_explicit(&p->waiting, memory_order_seq_cst) > 0 &&
        sluice__fill(p->qops, p->q) <= p->space_low &&
        !atomic_load_explicit(&p->space_signalled, memory_order_seq_cst)) {
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->space_signalled, true, memory_order_seq_cst);
        pthread_cond_broadcast(&p->cv_space);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- spawning ----------------------------------------------------------- */

void sluice__join_zombies(struct sluice_pool *p)
{
    pthread_t local[16];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        unsigned n = p->nzombies < 16 ? p->nzombies : 16;
        for (unsigned i = 0; i < n; i++) {
            local[i] = p->zombies[--p->nzombies];
        }
        pthread_mutex_unlock(&p->mu);
        if (n == 0) {
            return;
        }
        for (unsigned i = 0; i < n; i++) {
            pthread_join(local[i], NULL);
        }
    }
}

/* Counts a worker that could not be started (errnum 0: no memory) and
 * returns the error for it. The event goes out later, from
 * sluice__report_start_failure, with no lock held. */
static sluice_err start_failed(struct sluice_pool *p, int errnum)
{
    atomic_store_explicit(&p->start_fail_errno, errnum, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->start_failures, 1, memory_order_relaxed);
    return errnum ? SLUICE_ESYS : SLUICE_ENOMEM;
}

/* Start failures were silent (issue 12 item 11): under RLIMIT_NPROC a
 * K = 1,300 pool ran on 5 workers and nothing said so. Every failure is
 * counted (stats worker_start_failures); the event is rate-limited, since
 * a pool that cannot start threads tries again on every submit that finds
 * no idle worker: the first failure is reported at once, later ones at
 * most once a second (pool clock), each event carrying the total. */
void sluice__report_start_failure(struct sluice_pool *p)
{
    uint64_t total = atomic_load_explicit(&p->start_failures, memory_order_relaxed);
    uint64_t emitted = atomic_load_explicit(&p->start_fail_emitted, memory_order_relaxed);
    if (total == emitted) {
        return;
    }
    uint64_t now = sluice__now(p);
    uint64_t last = atomic_load_explicit(&p->start_fail_event_ns, memory_order_relaxed);
    if (emitted != 0 && now >= last && now - last < SLUICE_NS_PER_SEC) {
        return;
    }
    /* One reporter per window: whoever moves `emitted` to the total. */
    if (!atomic_compare_exchange_strong_explicit(&p->start_fail_emitted, &emitted, total,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        return;
    }
    atomic_store_explicit(&p->start_fail_event_ns, now, memory_order_relaxed);
    int errnum = atomic_load_explicit(&p->start_fail_errno, memory_order_relaxed);
    char detail[128];
    snprintf(detail, sizeof detail, "could not start a worker thread: %s",
             errnum ? strerror(errnum) : "out of memory");
    sluice__emit(p, SLUICE_EVENT_WORKER_START_FAILED, UINT32_MAX, (uint64_t)errnum, total,
                 errnum ? SLUICE_ESYS : SLUICE_ENOMEM, detail, NULL);
}

/* Starts one worker. Caller holds p->mu and has checked alive < K.
 * Returns SLUICE_OK, SLUICE_ENOMEM or SLUICE_ESYS (counted in
 * start_failures; the caller reports it once it holds no lock). */
sluice_err sluice__spawn_locked(struct sluice_pool *p)
{
    SLUICE__ASSERT_HELD(&p->mu);
    /* Lowest free slot, so names stay "name/0".."name/K-1". */
    sluice__worker *w = NULL;
    for (unsigned i = 0; i < p->nslots; i++) {
        if (!p->slots[i]->occupied) {
            w = p->slots[i];
            break;
        }
    }
    if (!w) {
        if (p->nslots == p->slots_cap) {
            /* Doubling: growing by one left a trail of freed arrays
             * (~0.4 KiB of touched heap a worker in a 1,000-worker pool). */
            unsigned cap = p->slots_cap ? 2 * p->slots_cap : 8;
            sluice__worker **grown = realloc(p->slots, cap * sizeof *grown);
            if (!grown) {
                return start_failed(p, 0);
            }
            p->slots = grown;
            p->slots_cap = cap;
        }
        /* From the pool's page slabs: two cache lines, no allocator
         * header or alignment waste (an aligned_alloc'ed 832-byte slot
         * took ~0.85 KiB of heap a worker). */
        w = slab_take_locked(p, sizeof *w);
        if (!w) {
            return start_failed(p, 0);
        }
        if (sem_init(&w->wake, 0, 0) != 0) {
            /* (Never on Linux, for an initial value of 0.) The slot's
             * bytes stay unused in the slab until the pool is freed. */
            return start_failed(p, errno);
        }
        w->pool = p;
        w->index = p->nslots;
        atomic_init(&w->status, SLUICE_WORKER_EXITING);
        p->slots[p->nslots++] = w;
    }
    w->occupied = true;
    w->init_ok = false;
    sluice__status_set(w, SLUICE_WORKER_STARTING, 0);
    atomic_store_explicit(&w->label, NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->alive, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->starting, 1, memory_order_seq_cst);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (p->cfg.stack_size) {
        pthread_attr_setstacksize(&attr, p->cfg.stack_size);
    }
    int rc = pthread_create(&w->thread, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        w->occupied = false;
        sluice__status_set(w, SLUICE_WORKER_EXITING, 0);
        sluice__gauge_dec(&p->starting);
        sluice__gauge_dec(&p->alive);
        sluice_err err = start_failed(p, rc);
        errno = rc;
        return err;
    }
    atomic_fetch_add_explicit(&p->started_workers, 1, memory_order_relaxed);
    sluice__max_u(&p->workers_hwm, atomic_load_explicit(&p->alive, memory_order_relaxed));
    return SLUICE_OK;
}

/* Makes sure enough workers exist for `want` queued tasks: wakes parked
 * ones first, then starts one new worker if fewer than K exist and none is
 * starting; the new worker starts the next (chain_spawn). Called after a
 * push. */
void sluice__spawn_for_work(struct sluice_pool *p, size_t want)
{
    unsigned idle = atomic_load_explicit(&p->idle, memory_order_seq_cst);
    if (idle > 0) {
        /* Count the workers actually woken, not `idle`: a parked worker may
         * have left the stack (expiry) since idle was read. */
        unsigned woken = sluice__wake(p, want < idle ? (unsigned)want : idle);
        if (woken >= want) {
            return;
        }
        want -= woken;
    }
    /* seq_cst: pairs with an expiring worker's CAS on alive and its
     * re-check of the queue (worker_main), like idle pairs with park(). */
    unsigned alive = atomic_load_explicit(&p->alive, memory_order_seq_cst);
    unsigned cap = atomic_load_explicit(&p->capacity, memory_order_relaxed);
    if (alive >= cap) {
        return;
    }
    /* seq_cst: pairs with a starting worker's decrement and its depth
     * read (chain_spawn): this submitter sees the worker still starting,
     * or the worker sees this submitter's task and starts the next. */
    if (atomic_load_explicit(&p->starting, memory_order_seq_cst) > 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    bool reap = p->nzombies > 0;
    bool failed = false;
    /* Not after a drain has finished: a submit that found the queue full
     * just before the close would otherwise start a worker (and run its
     * init and fini hooks) after drain() returned. */
    if (atomic_load_explicit(&p->starting, memory_order_relaxed) == 0 && !p->destroying && !p->drained &&
        atomic_load_explicit(&p->alive, memory_order_relaxed) <
            atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
        failed = sluice__spawn_locked(p) != SLUICE_OK;
    }
    pthread_mutex_unlock(&p->mu);
    if (failed) {
        sluice__report_start_failure(p);
    }
    if (reap) {
        sluice__join_zombies(p); /* expired workers: free their stacks */
    }
}

/* ---- running one task ---------------------------------------------------- */

static size_t bucket_of(const struct sluice_pool *p, uint64_t ns)
{
    if (p->doubling_buckets) {
        /* Bounds are 100 us * 2^k: the first k with 100000 << k >= ns. */
        if (ns <= 100000) {
            return 0;
        }
        uint64_t q = (ns - 1) / 100000;
        size_t k = (size_t)(64 - __builtin_clzll(q));
        return k < p->nbounds ? k : p->nbounds;
    }
    size_t lo = 0, hi = p->nbounds; /* first bound >= ns, or nbounds */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->bounds_ns[mid] >= ns) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* Worker slots and workers' histogram pairs come from page slabs the pool
 * maps itself (under mu), in cache-line multiples, never freed before the
 * pool: no allocator header or alignment waste per slot, and not malloc
 * on the worker thread (a thread's first malloc sets up its allocator
 * cache, ~0.6 KiB touched, which was most of what timing cost an idle
 * worker in the rss benchmark); untouched slab pages cost nothing. A
 * slab's first cache line links it to the previous one; pool_free unmaps
 * them all. The memory is zero (fresh from mmap, never reused). */
#define SLAB_BYTES ((size_t)16 * 1024)

static void *slab_take_locked(struct sluice_pool *p, size_t bytes)
{
    SLUICE__ASSERT_HELD(&p->mu);
    bytes = (bytes + SLUICE__CACHELINE - 1) / SLUICE__CACHELINE * SLUICE__CACHELINE;
    _Static_assert(2 * SLUICE__HIST_WORDS(SLUICE_HIST_MAX_BUCKETS) * sizeof(uint64_t) +
                           2 * SLUICE__CACHELINE <=
                       SLAB_BYTES,
                   "a slab holds the largest pair");
    _Static_assert(sizeof(sluice__worker) + SLUICE__CACHELINE <= SLAB_BYTES, "a slab holds a slot");
    if (!p->slab || p->slab_used + bytes > SLAB_BYTES) {
        void *slab = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (slab == MAP_FAILED) {
            return NULL;
        }
        *(void **)slab = p->slab;
        p->slab = slab;
        p->slab_used = SLUICE__CACHELINE;
    }
    void *mem = (char *)p->slab + p->slab_used;
    p->slab_used += bytes;
    return mem;
}

static sluice__hist *hist_pair_take(struct sluice_pool *p)
{
    pthread_mutex_lock(&p->mu);
    sluice__hist *pair = slab_take_locked(p, 2 * SLUICE__HIST_WORDS(p->nbounds) * sizeof(uint64_t));
    pthread_mutex_unlock(&p->mu);
    return pair;
}

void sluice__slabs_free(struct sluice_pool *p)
{
    while (p->slab) {
        void *next = *(void **)p->slab;
        munmap(p->slab, SLAB_BYTES);
        p->slab = next;
    }
}

/* The histogram pair a timed task is recorded into, and whether it is
 * the shared caller pair (fetch_add). A worker's own pair, taken after
 * its first SLUICE__HIST_OWN_AFTER timed tasks (internal.h, sluice__shard)
 * and stored only by its one writer; until then, or while no slab page
 * can be had, the caller shard's. Called once per timed task. */
static sluice__hist *hist_pair_for(struct sluice_pool *p, sluice__run *r, bool *shared)
{
    if (r) {
        sluice__shard *s = &r->slot->shard;
        sluice__hist *pair = atomic_load_explicit(&s->hists, memory_order_relaxed);
        if (!pair && r->hist_shared >= SLUICE__HIST_OWN_AFTER && (pair = hist_pair_take(p)) != NULL) {
            /* Pairs with the acquire load in sluice_pool_histogram_get. */
            atomic_store_explicit(&s->hists, pair, memory_order_release);
        }
        if (pair) {
            *shared = false;
            return pair;
        }
        if (r->hist_shared < SLUICE__HIST_OWN_AFTER) {
            r->hist_shared++;
        }
    }
    *shared = true;
    return atomic_load_explicit(&p->caller_shard.hists, memory_order_relaxed);
}

/* Records ns in a pair's task-time (which 0) or wait (1) histogram. */
static void hist_record(struct sluice_pool *p, sluice__hist *pair, bool shared, int which, uint64_t ns)
{
    sluice__hist *h = sluice__hist_of(pair, p->nbounds, which);
    size_t b = bucket_of(p, ns);
    sluice__shard_add(shared, &h->counts[b], 1);
    sluice__shard_add(shared, &h->count, 1);
    sluice__shard_add(shared, &h->sum_ns, ns);
}

/* Automatic timing sample rate (SLUICE_TIMING_SAMPLE_AUTO). Timing a task
 * costs a fixed few tens of ns (two clock reads, two histogram updates:
 * sluice__timing_cost_ns); for a 1 ms task that is nothing, for a 50 ns
 * no-op task it is more than the task. So each worker keeps a moving
 * average of the durations it timed (weight 1/8) and asks for 1 task in
 * N with N = 100 x cost / average: timing stays near 1% of task time,
 * every task is timed once tasks take ~100 x cost (a few us), and at most
 * 1 in AUTO_EVERY_MAX. The pool's N is stored only when it moves by more
 * than a quarter (a CAS from the word - N and the auto bit - the task was
 * timed under: a live sluice_pool_set_timing_sample wins), so workers
 * with slightly different averages do not keep writing the line producers
 * read on every submit. A switch to long tasks
 * is seen at the next timed one (the average jumps by 1/8 of it). */
#define AUTO_EVERY_MAX 256u

static void auto_sample(struct sluice_pool *p, sluice__run *r, unsigned word, uint64_t d)
{
    unsigned every = SLUICE__TIMING_N(word);
    uint64_t avg = r->task_avg_ns;
    avg = avg ? avg - avg / 8 + d / 8 : d;
    if (avg == 0) {
        avg = 1;
    }
    r->task_avg_ns = avg;
    uint64_t want = (100 * sluice__timing_cost_ns() + avg - 1) / avg;
    if (want < 1) {
        want = 1;
    } else if (want > AUTO_EVERY_MAX) {
        want = AUTO_EVERY_MAX;
    }
    if (want > every + every / 4 || want + want / 4 < every) {
        atomic_compare_exchange_strong_explicit(&p->timing_every, &word, (unsigned)want | SLUICE__TIMING_AUTO,
                                                memory_order_relaxed, memory_order_relaxed);
    }
}

/* Runs fn under a local jump point (CALLER_RUNS tasks; a worker's tasks
 * use the worker loop's, see worker_guarded). Returns 0 normally (rc in
 * *rc), 1 after sluice_panic, 2 after a fault recovered by the guard. Kept
 * separate and non-inlined so no local of the caller lives across the
 * setjmp. */
static __attribute__((noinline)) int invoke(sigjmp_buf *jump, sluice_task_fn fn, void *arg, int *rc)
{
    int jumped = sigsetjmp(*jump, 0);
    if (jumped == 0) {
        *rc = fn(arg);
        return 0;
    }
    return jumped;
}

static bool task_expired(struct sluice_pool *p, const sluice__task *t)
{
    if (t->deadline_ns && sluice__deadline_passed(sluice__now(p), t->deadline_ns)) {
        return true;
    }
    return t->ctx && sluice_ctx_err(t->ctx) != SLUICE_OK;
}

/* The start of a task, on a worker (r) or a submitter (r NULL: a
 * CALLER_RUNS task, counted in the caller shard): sheds it if its
 * deadline passed or its context ended (returns false), else reads the
 * timing word and the start time (*start 0: not timed) and publishes the
 * worker as running. */
static bool task_begin(struct sluice_pool *p, sluice__run *r, sluice__task *t, uint64_t *now_hint,
                       uint64_t *start, unsigned *word)
{
    sluice__worker *w = r ? r->slot : NULL;
    if ((t->deadline_ns || t->ctx) && task_expired(p, t)) {
        sluice__shard *shard = w ? &w->shard : &p->caller_shard;
        sluice__shard_add(!w, &shard->shed, 1);
        if (t->tenant) { /* before the status: whoever sees it finished sees its tenant's count */
            p->qops->finish(p->q, t, w ? SLUICE__FROM_POP : SLUICE__FROM_SUBMIT, SLUICE__OUT_SHED, -1, 0);
        }
        if (w) {
            sluice__status_set(w, SLUICE_WORKER_IDLE, 1);
        }
        sluice__abandon(p, t, SLUICE_ABANDON_SHED);
        return false;
    }

    *word = atomic_load_explicit(&p->timing_every, memory_order_relaxed);
    unsigned every = SLUICE__TIMING_N(*word);
    bool timed = t->enqueue_ns != 0 || (every == 1);
    *start = 0;
    if (every && timed) {
        /* When a worker goes straight from one task to the next, the
         * previous task's end time is this one's start (early by the cost
         * of one pop): one clock read per task instead of two. */
        *start = now_hint && *now_hint ? *now_hint : sluice__timing_now(p);
        if (*start == 0) {
            *start = 1;
        }
    }
    if (w) {
        atomic_store_explicit(&w->since_ns, *start, memory_order_relaxed);
        atomic_store_explicit(&w->label, t->label, memory_order_relaxed);
        sluice__status_set(w, SLUICE_WORKER_RUNNING, 0);
    }
    return true;
}

static void frame_enter(sluice__frame *f, struct sluice_pool *p, sluice__run *r, const sluice__task *t,
                        sigjmp_buf *jump)
{
    f->pool = p;
    f->worker = r;
    f->task = t;
    f->jump = jump;
    f->ncleanup = 0;
    f->panicking = false;
    f->rec_owned = false;
    f->signo = 0;
    f->rec = NULL;
    f->outer = sluice__tls_frame; /* a CALLER_RUNS task inside a task */
    sluice__tls_frame = f;
}

/* The end of a task that ran, on a worker (r) or a submitter (r NULL):
 * `jumped` is 0 when fn returned rc, 1 after sluice_panic, 2 after a
 * recovered fault. Counts the outcome, reports a panic, records the
 * timing, and releases the task's context. */
static void task_end(struct sluice_pool *p, sluice__run *r, sluice__task *t, sluice__frame *f, int jumped,
                     int rc, uint64_t start, unsigned word, uint64_t *now_hint)
{
    sluice__worker *w = r ? r->slot : NULL;
    sluice__shard *shard = w ? &w->shard : &p->caller_shard;
    sluice__tls_frame = f->outer;
    sluice__outcome outcome;
    if (jumped) {
        sluice__shard_add(!w, &shard->panicked, 1);
        sluice__report_panic(p, f);
        outcome = SLUICE__OUT_PANICKED;
    } else if (rc == 0) {
        sluice__shard_add(!w, &shard->completed, 1);
        outcome = SLUICE__OUT_COMPLETED;
    } else {
        sluice__shard_add(!w, &shard->failed, 1);
        outcome = SLUICE__OUT_FAILED;
    }
    /* A panic's record, also when the task caught the panic itself and
     * returned (a task group's helper jumps back into the waiting task
     * from a cleanup handler, src/sync/group.c). */
    if (f->rec_owned) {
        free(f->rec);
    }
    f->rec = NULL;
    f->rec_owned = false;
    int wait_bucket = -1;
    uint64_t wait_ns = 0;

    if (now_hint) {
        *now_hint = 0;
    }
    if (start) {
        uint64_t end = sluice__timing_now(p);
        if (now_hint) {
            *now_hint = end;
        }
        uint64_t d = end > start ? end - start : 0;
        bool shared;
        sluice__hist *pair = hist_pair_for(p, r, &shared);
        hist_record(p, pair, shared, 0, d);
        /* Automatic sampling on the system clock only: a custom clock
         * (tests) times every task. */
        if (r && (word & SLUICE__TIMING_AUTO) && p->system_clock) {
            auto_sample(p, r, word, d);
        }
        if (t->enqueue_ns) {
            wait_ns = start > t->enqueue_ns ? start - t->enqueue_ns : 0;
            hist_record(p, pair, shared, 1, wait_ns);
            wait_bucket = (int)bucket_of(p, wait_ns);
        }
    }
    if (t->tenant) {
        if (r && p->qops->pop_finish && !p->overload) {
            /* Finished by this worker's next pop (or finish_deferred). */
            r->done = (sluice__done){t->tenant, outcome, wait_bucket, wait_ns};
        } else {
            p->qops->finish(p->q, t, w ? SLUICE__FROM_POP : SLUICE__FROM_SUBMIT, outcome, wait_bucket,
                            wait_ns);
        }
    }
    if (w) {
        atomic_store_explicit(&w->label, NULL, memory_order_relaxed);
        sluice__status_set(w, SLUICE_WORKER_IDLE, 1);
    }
    sluice_ctx_release(t->ctx);
    t->ctx = NULL;
}

bool sluice__run_task(struct sluice_pool *p, sluice__task *t)
{
    uint64_t start;
    unsigned word;
    if (!task_begin(p, NULL, t, NULL, &start, &word)) {
        return false;
    }
    sigjmp_buf jump;
    sluice__frame frame;
    frame_enter(&frame, p, NULL, t, &jump);
    int rc = 0;
    int jumped = invoke(&jump, t->fn, t->arg, &rc);
    task_end(p, NULL, t, &frame, jumped, rc, start, word, NULL);
    return true;
}

/* A worker runs r->cur with the frame in its run state and no jump point
 * of its own: sluice_panic and a recovered fault jump to the one the
 * worker loop armed (worker_guarded), which finishes the task from the
 * run state. */
static void run_worker_task(struct sluice_pool *p, sluice__run *r, uint64_t *now_hint)
{
    if (!task_begin(p, r, &r->cur, now_hint, &r->cur_start, &r->cur_word)) {
        return;
    }
    frame_enter(&r->frame, p, r, &r->cur, &r->jump);
    int rc = r->cur.fn(r->cur.arg);
    task_end(p, r, &r->cur, &r->frame, 0, rc, r->cur_start, r->cur_word, now_hint);
}

/* ---- the worker thread --------------------------------------------------- */

/* Leaves `alive` if there are more workers than `limit`. */
static bool leave_alive_above(struct sluice_pool *p, unsigned limit)
{
    unsigned a = atomic_load_explicit(&p->alive, memory_order_relaxed);
    while (a > limit) {
        if (atomic_compare_exchange_weak_explicit(&p->alive, &a, a - 1, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

typedef enum park_result { PARK_WORK, PARK_EXPIRED } park_result;

/* Sleeps on the worker's semaphore until `deadline_ns` (pool clock; 0 =
 * none). Returns false on timeout (or a poll period with a fake clock). */
static bool sem_sleep(struct sluice_pool *p, sluice__worker *w, uint64_t deadline_ns)
{
    if ((deadline_ns == 0 || deadline_ns == UINT64_MAX) && p->system_clock) {
        while (sem_wait(&w->wake) != 0) {
        }
        return true;
    }
    struct timespec ts = p->system_clock ? sluice__ts_from_ns(deadline_ns) : sluice__poll_deadline();
    while (sem_clockwait(&w->wake, CLOCK_MONOTONIC, &ts) != 0) {
        if (errno == ETIMEDOUT) {
            return false;
        }
    }
    return true;
}

/* Parks until woken (work may be there, or the pool changed), or until the
 * idle expiry passes. */
static park_result park(struct sluice_pool *p, sluice__worker *w, uint64_t idle_since)
{
    pthread_mutex_lock(&p->park_mu);
    atomic_fetch_add_explicit(&p->idle, 1, memory_order_seq_cst);
    /* seq_cst re-check: pairs with the claim in push (see header). */
    if (p->qops->pending(p->q) || atomic_load_explicit(&p->closed, memory_order_seq_cst) ||
        atomic_load_explicit(&p->alive, memory_order_relaxed) >
            atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
        sluice__gauge_dec(&p->idle);
        pthread_mutex_unlock(&p->park_mu);
        return PARK_WORK;
    }
    w->parked = true;
    w->park_next = p->parked_top;
    p->parked_top = w;
    pthread_mutex_unlock(&p->park_mu);

    for (;;) {
        uint64_t expiry = atomic_load_explicit(&p->idle_expiry_ns, memory_order_relaxed);
        uint64_t deadline = 0;
        if (expiry && atomic_load_explicit(&p->alive, memory_order_relaxed) > p->cfg.min_workers) {
            deadline = sluice__add_sat(idle_since, expiry);
        }
        if (sem_sleep(p, w, deadline)) {
            return PARK_WORK; /* posted: whoever posted popped us and fixed idle */
        }
        /* Timed out (or a fake-clock poll): still parked unless a waker
         * popped us meanwhile, in which case its post is on its way. */
        pthread_mutex_lock(&p->park_mu);
        if (!w->parked) {
            pthread_mutex_unlock(&p->park_mu);
            while (sem_wait(&w->wake) != 0) { /* take the post that is coming */
            }
            return PARK_WORK;
        }
        expiry = atomic_load_explicit(&p->idle_expiry_ns, memory_order_relaxed);
        bool expired = expiry && atomic_load_explicit(&p->alive, memory_order_relaxed) > p->cfg.min_workers &&
                       sluice__deadline_passed(sluice__now(p), sluice__add_sat(idle_since, expiry));
        bool leave = expired || atomic_load_explicit(&p->closed, memory_order_relaxed);
        if (leave) {
            /* Unlink ourselves from the stack. */
            sluice__worker **link = &p->parked_top;
            while (*link != w) {
                link = &(*link)->park_next;
            }
            *link = w->park_next;
            w->parked = false;
            sluice__gauge_dec(&p->idle);
        }
        pthread_mutex_unlock(&p->park_mu);
        if (leave) {
            return expired ? PARK_EXPIRED : PARK_WORK;
        }
    }
}

/* "pool/index", the pool's name cut to fit the kernel's 15 bytes. Formed
 * by hand, not with snprintf: this is the deepest call a new worker
 * makes (vfprintf's frame is over 1.5 KiB), and with it the worker's
 * stack reached 6.6 KiB below its top, leaving too little of the two
 * pages every thread touches for the run state (sluice__run). */
static void set_thread_name(const sluice__worker *w)
{
    char idx[12];
    size_t il = sizeof idx;
    unsigned v = w->index;
    do {
        idx[--il] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    idx[--il] = '/';
    char name[16];
    size_t digits = sizeof idx - il;
    size_t room = sizeof name - 1 - digits;
    size_t nl = strnlen(w->pool->name, room);
    memcpy(name, w->pool->name, nl);
    memcpy(name + nl, idx + il, digits);
    name[nl + digits] = '\0';
    pthread_setname_np(pthread_self(), name);
}

/* Chain spawning. A burst into a cold pool used to make the submitting
 * thread call pthread_create for every worker up to K (under mu: 5,000
 * submits into a cold K = 100 pool took 39-113 ms instead of ~0.5 ms).
 * Now a submitter starts at most one worker and skips spawning while one
 * is starting; each new worker, first thing, stops counting as starting
 * and, if at least two tasks are queued (one for itself, one for the
 * next), starts the next one. Thread creation is spread over the new
 * threads, and their worker_init hooks still run in parallel.
 *
 * No task is left without a worker: the submitter pushes (seq_cst) and
 * then reads `starting` (seq_cst); the worker decrements `starting`
 * (seq_cst) and then reads the depth (seq_cst). In the single total order
 * either the submitter sees the worker still starting (and the worker then
 * sees its task: it takes it, or starts a worker for it), or the submitter
 * sees starting == 0 and starts one itself. */
static void chain_spawn(struct sluice_pool *p)
{
    sluice__gauge_dec(&p->starting);
    /* seq_cst: depth pairs with a submitter's push, capacity with a
     * resize's store (both then read `starting`). The depth, not the
     * cheaper fill: fifo_batch's fill leaves out the tasks held in hands,
     * and a burst whose tasks a claimer held started too few workers
     * (queue_ring.c, "Batch claims", guarantee 4). `alive` is read before
     * the depth: a worker that left it after finding a closed queue empty
     * is then seen with the queue empty (pool.c, start_for_drain). */
    if (atomic_load_explicit(&p->alive, memory_order_seq_cst) >=
            atomic_load_explicit(&p->capacity, memory_order_seq_cst) ||
        p->qops->depth(p->q) < 2) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    bool failed = false;
    if (atomic_load_explicit(&p->starting, memory_order_relaxed) == 0 && !p->destroying &&
        !atomic_load_explicit(&p->stop, memory_order_relaxed) &&
        atomic_load_explicit(&p->alive, memory_order_relaxed) <
            atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
        failed = sluice__spawn_locked(p) != SLUICE_OK;
    }
    pthread_mutex_unlock(&p->mu);
    if (failed) {
        sluice__report_start_failure(p); /* this worker counts in alive: the pool outlives the call */
    }
}

/* The run loop's state, kept in worker_main's frame so that it survives a
 * panic's jump back to worker_guarded. */
typedef struct loop_state {
    const char *reason;
    bool counted_alive;   /* still counted in p->alive */
    uint64_t idle_since;  /* 0 while busy */
    uint64_t now_hint;    /* end time of the task just run, when back to back */
    unsigned spin_budget; /* polls before parking (adaptive) */
    bool after_idle;      /* the next task is the first since this worker spun or parked */
} loop_state;

/* After the first pop that follows a spin or a park: if more tasks are
 * queued and a worker is parked while none spins, wake one. Producers do
 * not wake parked workers while a worker spins (the spinner will take the
 * task); a spinner that takes one of several tasks queued meanwhile hands
 * the rest on this way, and each woken worker continues the chain. Called
 * after the spinner cleared p->spinning (seq_cst), so for every push
 * either its producer saw spinning == 0 (and woke a worker itself) or this
 * check sees its task. */
static void wake_next_if_queued(struct sluice_pool *p)
{
    if (atomic_load_explicit(&p->idle, memory_order_seq_cst) > 0 &&
        atomic_load_explicit(&p->spinning, memory_order_seq_cst) == 0 && p->qops->pending(p->q)) {
        (void)sluice__wake(p, 1);
    }
}

void sluice__after_claim(struct sluice_pool *p)
{
    wake_next_if_queued(p);
}

/* Polls the queue while this worker is the pool's one spinner. Returns
 * true if work showed up (or may have: the re-check after giving up the
 * spinner's place), false if the worker should park. At most one worker
 * spins: on a small machine a second spinner only takes CPU from the
 * producers and the running tasks, and the pollers of one head line move
 * it between cores on every poll. */
static bool spin_for_work(struct sluice_pool *p, loop_state *st)
{
    unsigned none = 0;
    if (!atomic_compare_exchange_strong_explicit(&p->spinning, &none, 1, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        return false; /* another worker spins: park (park() re-checks the queue) */
    }
    bool found = false;
    for (unsigned i = 0; i < st->spin_budget; i++) {
        sluice__cpu_relax();
        if (p->qops->ready(p->q)) {
            found = true;
            break;
        }
    }
    /* seq_cst: pairs with a producer's load of `spinning` after its push
     * (pool.c, submit_one): a producer that still saw 1 woke nobody, and
     * its task is seen by the re-check below (or by the pop). */
    atomic_store_explicit(&p->spinning, 0, memory_order_seq_cst);
    if (found) {
        st->spin_budget = st->spin_budget * 2 > SPIN_POLLS_MAX ? SPIN_POLLS_MAX : st->spin_budget * 2;
        return true;
    }
    st->spin_budget = st->spin_budget / 2 < SPIN_POLLS_MIN ? SPIN_POLLS_MIN : st->spin_budget / 2;
    return p->qops->pending(p->q);
}

/* The run loop proper: returns when the worker is to exit (st->reason,
 * st->counted_alive say why). A panic inside a task leaves it by a jump
 * to worker_guarded, which finishes the task and calls it again. */
static void worker_loop(struct sluice_pool *p, sluice__run *r, loop_state *st)
{
    sluice__worker *w = r->slot;
    for (;;) {
        /* Shrink: leave before taking another task. */
        if (atomic_load_explicit(&p->alive, memory_order_relaxed) >
                atomic_load_explicit(&p->capacity, memory_order_relaxed) &&
            leave_alive_above(p, atomic_load_explicit(&p->capacity, memory_order_relaxed))) {
            st->counted_alive = false;
            st->reason = "retired";
            atomic_fetch_add_explicit(&p->retired_workers, 1, memory_order_relaxed);
            return;
        }
        /* Past the drain deadline or in destroy, queued tasks are handed
         * back by the draining thread, not started. */
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
            return;
        }
        /* p->overload is fixed at create: with it off, the pop is the ring's
         * (or the fair queue's, with the last task's finish folded in). */
        sluice__qres got;
        if (r->done.tenant) {
            got = p->qops->pop_finish(p->q, &r->done, &r->cur);
            r->done.tenant = NULL;
        } else {
            got = p->overload ? sluice__overload_pop(p, w, &r->cur) : p->qops->pop(p->q, &r->cur);
        }
        if (got == SLUICE__Q_OK) {
            sluice__notify_space(p);
            if (st->after_idle) {
                st->after_idle = false;
                wake_next_if_queued(p);
            }
            run_worker_task(p, r, &st->now_hint);
            st->idle_since = 0;
            continue;
        }
        st->now_hint = 0; /* the next task's start is after a wait: read the clock */
        if (atomic_load_explicit(&p->closed, memory_order_acquire)) {
            return; /* closed and empty: the drain is over for this worker */
        }
        st->after_idle = true;
        if (spin_for_work(p, st)) {
            continue;
        }
        if (st->idle_since == 0) {
            st->idle_since = sluice__now(p);
            atomic_store_explicit(&w->since_ns, st->idle_since, memory_order_relaxed);
        }
        if (park(p, w, st->idle_since) == PARK_EXPIRED && leave_alive_above(p, p->cfg.min_workers)) {
            /* A producer that pushed just now may have seen this worker in
             * neither idle nor a free alive slot; the seq_cst CAS on alive
             * and this seq_cst re-check pair with its push and alive load.
             * If work is there, take the slot back and stay. */
            if (p->qops->pending(p->q) && !atomic_load_explicit(&p->closed, memory_order_seq_cst)) {
                unsigned a = atomic_load_explicit(&p->alive, memory_order_seq_cst);
                bool rejoined = false;
                while (a < atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
                    if (atomic_compare_exchange_weak_explicit(&p->alive, &a, a + 1, memory_order_seq_cst,
                                                              memory_order_relaxed)) {
                        rejoined = true;
                        break;
                    }
                }
                if (rejoined) {
                    st->idle_since = 0;
                    continue;
                }
            }
            st->counted_alive = false;
            st->reason = "expired";
            atomic_fetch_add_explicit(&p->expired_workers, 1, memory_order_relaxed);
            return;
        }
    }
}

/* The worker's one jump point, armed once per loop instead of once per
 * task (a sigsetjmp and its signal-mask save were ~26 instructions a
 * task). sluice_panic and a fault recovered by the guard jump here from
 * inside run_worker_task; the task and its frame are in the run state
 * (worker_main's frame, which the jump keeps), so the task is finished here (counted, reported, timed, its
 * context released), the jump point is re-armed and the loop goes on. A worker retired by a fault leaves
 * instead. Non-inlined, and nothing it keeps changes after the sigsetjmp, so no local is clobbered by the
 * jump. */
static __attribute__((noinline)) void worker_guarded(struct sluice_pool *p, sluice__run *r, loop_state *st)
{
    for (;;) {
        int jumped = sigsetjmp(r->jump, 0);
        if (jumped == 0) {
            worker_loop(p, r, st);
            return;
        }
        task_end(p, r, &r->cur, &r->frame, jumped, 0, r->cur_start, r->cur_word, NULL);
        st->now_hint = 0;
        st->idle_since = 0;
        if (r->fault_retire) {
            st->reason = "fault";
            atomic_fetch_add_explicit(&p->retired_workers, 1, memory_order_relaxed);
            return;
        }
    }
}

/* A worker leaving its loop with its last task's finish still deferred
 * (shrink, stop, a fault) finishes it here, before its slot is freed, so
 * drain and destroy see every popped task finished. */
static void finish_deferred(struct sluice_pool *p, sluice__run *r)
{
    if (r->done.tenant) {
        sluice__task t = {.tenant = r->done.tenant};
        p->qops->finish(p->q, &t, SLUICE__FROM_POP, r->done.outcome, r->done.wait_bucket, r->done.wait_ns);
        r->done.tenant = NULL;
    }
}

static void *worker_main(void *arg)
{
    sluice__worker *w = arg;
    struct sluice_pool *p = w->pool;
    /* The thread's own state, on its stack (internal.h, sluice__run):
     * zero but for its pool and slot. */
    sluice__run run;
    memset(&run, 0, sizeof run);
    run.pool = p;
    run.slot = w;
    sluice__tls_worker = &run;
    set_thread_name(w);
    if (p->cfg.fault_mode != SLUICE_FAULT_OFF) {
        sluice__altstack_enter(&run);
        sluice__unblock_fault_signals();
    }

    chain_spawn(p);

    const char *reason = "shutdown";
    bool counted_alive = true; /* still counted in p->alive */
    int init_rc = 0;
    if (p->cfg.worker_init) {
        init_rc = p->cfg.worker_init(p->cfg.user, w->index, &run.worker_state);
    }
    pthread_mutex_lock(&p->mu);
    w->init_ok = init_rc == 0;
    if (p->prewarm_pending > 0) {
        p->prewarm_pending--;
        pthread_cond_broadcast(&p->cv_state);
    }
    pthread_mutex_unlock(&p->mu);
    if (init_rc != 0) {
        atomic_fetch_add_explicit(&p->init_failures, 1, memory_order_relaxed);
        reason = "init-failed";
        goto out;
    }
    sluice__emit(p, SLUICE_EVENT_WORKER_START, w->index, 0, 0, SLUICE_OK, NULL, NULL);

    atomic_store_explicit(&w->since_ns, sluice__now(p), memory_order_relaxed);
    sluice__status_set(w, SLUICE_WORKER_IDLE, 0);
    loop_state st = {
        .reason = reason,
        .counted_alive = true,
        .idle_since = sluice__now(p),
        .spin_budget = SPIN_POLLS_MAX,
    };
    worker_guarded(p, &run, &st);
    finish_deferred(p, &run);
    /* A worker that leaves (retired, expired, a fault) may leave a run of
     * claimed tasks in its hand (fifo_batch): make sure a worker comes for
     * them, as a push would. Not on stop: the drain hands them back. */
    if (p->qops == &sluice__ring_batch_ops && !atomic_load_explicit(&p->stop, memory_order_acquire) &&
        p->qops->pending(p->q)) {
        sluice__spawn_for_work(p, 1);
    }
    reason = st.reason;
    counted_alive = st.counted_alive;

    if (p->cfg.worker_fini) {
        p->cfg.worker_fini(p->cfg.user, w->index, run.worker_state);
    }
out:
    sluice__status_set(w, SLUICE_WORKER_EXITING, 0);
    sluice__emit(p, SLUICE_EVENT_WORKER_EXIT, w->index, 0, 0, SLUICE_OK, reason, NULL);
    if (p->cfg.fault_mode != SLUICE_FAULT_OFF) {
        sluice__altstack_leave(&run);
    }
    bool replace = run.fault_retire;
    /* Join workers that exited before this one (never itself, never one
     * that is joining: a thread joins only before it lists itself), so
     * expired workers' stacks are freed while the pool runs. */
    sluice__join_zombies(p);
    pthread_mutex_lock(&p->mu);
    if (counted_alive) {
        sluice__gauge_dec(&p->alive);
    }
    if (p->nzombies == p->zombies_cap) {
        unsigned ncap = p->zombies_cap ? p->zombies_cap * 2 : 8;
        pthread_t *z = realloc(p->zombies, ncap * sizeof *z);
        if (z) {
            p->zombies = z;
            p->zombies_cap = ncap;
        }
    }
    bool joinable = p->nzombies < p->zombies_cap;
    if (joinable) {
        p->zombies[p->nzombies++] = pthread_self();
    } else {
        /* Could not record it for a join: let it clean up itself. */
        pthread_detach(pthread_self());
    }
    w->occupied = false;
    pthread_cond_broadcast(&p->cv_state);
    if (atomic_load_explicit(&p->waiting, memory_order_seq_cst) > 0) {
        /* Blocked submitters check whether any worker is left to make
         * room (pool.c, wait_for_space). */
        pthread_cond_broadcast(&p->cv_space);
    }
    /* A worker retired by a fault is replaced at once, queue empty or not
     * (fault.h: "retire the faulting worker and replace it"), so a
     * prewarmed pool keeps its K workers with their init hooks run, and
     * the next task does not pay for a thread start. */
    bool failed = false;
    if (replace && !p->destroying && !atomic_load_explicit(&p->closed, memory_order_relaxed) &&
        atomic_load_explicit(&p->alive, memory_order_relaxed) <
            atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
        failed = sluice__spawn_locked(p) != SLUICE_OK;
    }
    pthread_mutex_unlock(&p->mu);
    /* Listed as a zombie, this thread is joined before the pool is freed
     * (destroy joins every zombie), so it may still report. */
    if (failed && joinable) {
        sluice__report_start_failure(p);
    }
    sluice__tls_worker = NULL;
    return NULL;
}
