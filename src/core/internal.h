/*
 * src/core/internal.h - the pool's private structures, shared by the files
 * of src/core (pool.c, worker.c, queue_ring.c, panic.c).
 *
 * Lock order (outer to inner): pool->mu -> pool->park_mu. A thread never
 * holds either while calling user code (tasks, hooks, handlers), with one
 * documented exception: none. The ring queue itself takes no lock.
 */
#ifndef SLUICE_CORE_INTERNAL_H
#define SLUICE_CORE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/check.h"
#include "base/errbuf.h"
#include "base/rules.h"
#include "base/timing.h"
#include "sluice/pool.h"
#include "sluice/task.h"

#define SLUICE__CACHELINE 64
#define SLUICE__ALIGNED _Alignas(SLUICE__CACHELINE)

/* ---- tasks and the queue interface ----------------------------------- */

/* A queued task, stored by value in the queue: no allocation per task. */
typedef struct sluice__task {
    sluice_task_fn fn;
    void *arg;
    const char *label;
    sluice_ctx *ctx;                                  /* retained while queued; NULL if none */
    uint64_t deadline_ns;                             /* 0: none */
    uint64_t enqueue_ns;                              /* 0: not sampled for timing */
    void (*on_abandon)(const sluice_abandoned *task); /* NULL: the pool's handler */
    /* FAIR pools: the tenant (queue_fair.c). Kept last: the FIFO ring
     * stores tasks without it (its slots stay 64 bytes) and pops NULL. */
    struct sluice_tenant *tenant;
} sluice__task;

typedef enum sluice__qres {
    SLUICE__Q_OK = 0,
    SLUICE__Q_FULL,
    SLUICE__Q_EMPTY,
    SLUICE__Q_CLOSED,
    SLUICE__Q_TENANT_FULL, /* the task's tenant is at its queued limit (fair queue) */
} sluice__qres;

/* How a task the pool was given ended, for per-tenant accounting
 * (sluice__queue_ops.finish). */
typedef enum sluice__outcome {
    SLUICE__OUT_COMPLETED = 0,
    SLUICE__OUT_FAILED,
    SLUICE__OUT_PANICKED,
    SLUICE__OUT_SHED,
    SLUICE__OUT_DROPPED,
    SLUICE__OUT_ABANDONED,
    SLUICE__OUT_REJECTED,
} sluice__outcome;

/* Where the task given to finish came from. */
typedef enum sluice__origin {
    SLUICE__FROM_SUBMIT = 0, /* never queued: refused, or run by CALLER_RUNS (then also submitted) */
    SLUICE__FROM_POP,        /* returned by pop (a start: counted in the tenant's running) */
    SLUICE__FROM_EVICT,      /* returned by evict */
} sluice__origin;

/* A worker's finished task whose finish is deferred to its next pop
 * (sluice__queue_ops.pop_finish): the arguments finish would have had,
 * origin SLUICE__FROM_POP. tenant NULL: nothing deferred. */
typedef struct sluice__done {
    struct sluice_tenant *tenant;
    sluice__outcome outcome;
    int wait_bucket;
    uint64_t wait_ns;
} sluice__done;

/*
 * The queue behind the pool. The pool talks to its queue only through this
 * table, so another discipline (a per-tenant fair queue) can replace the
 * FIFO ring without touching the pool. Contract for every implementation:
 *   push   is safe from any number of threads; returns OK, FULL or CLOSED.
 *          It is a seq_cst operation with respect to `pending` (see the
 *          parking protocol in worker.c).
 *   pop    is safe from any number of threads; returns OK or EMPTY. It
 *          never returns EMPTY while a task whose push already returned OK
 *          is still in the queue; it may wait briefly for a push in flight.
 *   close  makes every later push return CLOSED; pushes that already
 *          claimed a place complete. Idempotent.
 *   pending true if a pushed-or-being-pushed task is there (seq_cst read).
 *   ready  a cheap hint that the next task is published (no ordering; for
 *          spinning, never for the decision to sleep).
 *   depth  count of queued tasks, from seq_cst reads of both ends (a
 *          snapshot while pushes and pops run; exact when none is).
 *   pushed total pushes that returned OK since creation (exact).
 * Optional (NULL in the ring):
 *   evict  remove and return a task the pool gives up on, ignoring
 *          running limits: with `incoming` (DROP_OLDEST), a task whose
 *          eviction makes room for it; with NULL (drain, destroy), any
 *          queued task. Returns OK or EMPTY. Counts as a pop for `pending`
 *          and `depth`; the pool hands the task back and calls finish.
 *   finish per-tenant accounting: called once for every task with a
 *          tenant that pop or evict returned, when the pool is done with
 *          it, and for every task with a tenant that never entered the
 *          queue (refused, or run by CALLER_RUNS). `wait_bucket` is the
 *          wait histogram's bucket for a started task, or -1.
 * A queue with finish may return SLUICE__Q_TENANT_FULL from push.
 * Optional ops (NULL when a discipline cannot offer them; src/core/overload.c
 * checks before it uses one, and pool create refuses a mode that needs a
 * missing one):
 *   pop_newest  like pop, but takes the most recently pushed task (LIFO).
 *   oldest_ns   the enqueue_ns of the task pop would return next; 0 when
 *               empty. A snapshot: another thread may pop it meanwhile.
 *   pop_finish  finish(done, FROM_POP) then pop, as one operation (one
 *               lock instead of two per task). A worker with pop_finish
 *               and no overload mode defers its task's finish to its next
 *               pop, and finishes it plainly if it leaves the loop first
 *               (worker.c), so every popped task is still finished once.
 */
typedef struct sluice__queue_ops {
    sluice__qres (*push)(void *q, const sluice__task *task, uint64_t *pos_out);
    sluice__qres (*pop)(void *q, sluice__task *out);
    void (*close)(void *q);
    bool (*pending)(void *q);
    bool (*ready)(void *q);
    size_t (*depth)(void *q);
    uint64_t (*pushed)(void *q);
    size_t (*capacity)(void *q);
    void (*destroy)(void *q);
    sluice__qres (*evict)(void *q, const sluice__task *incoming, sluice__task *out);
    void (*finish)(void *q, const sluice__task *task, sluice__origin origin, sluice__outcome outcome,
                   int wait_bucket, uint64_t wait_ns);
    sluice__qres (*pop_newest)(void *q, sluice__task *out);                           /* optional */
    uint64_t (*oldest_ns)(void *q);                                                   /* optional */
    sluice__qres (*pop_finish)(void *q, const sluice__done *done, sluice__task *out); /* optional */
    size_t (*fill)(void *q); /* optional: a cheaper depth for the hot checks (sluice__fill) */
    /* optional: push the longest prefix of tasks[0..n) that fits with one
     * claim; returns how many; *why is CLOSED, or FULL when the next
     * place was not free at the look (full, or a copy out in flight), when
     * fewer than n (else OK). The same contract as n pushes in order. */
    size_t (*push_n)(void *q, const sluice__task *tasks, size_t n, sluice__qres *why);
} sluice__queue_ops;

/* The depth the per-task checks use (blocked submitters' low-water mark,
 * the depth high-water mark, chain spawning): `fill` where the queue has
 * one, else depth. fifo_batch's fill leaves out the tasks held in the
 * workers' hands, which depth sums by reading every hand's line: read on
 * every pop, that moved the hands between cores and cost ~150 ns a task
 * (perf, spin-1us). The low-water protocol needs only that submitters and
 * workers compare the same number, changed by the seq_cst head CAS. */
static inline size_t sluice__fill(const struct sluice__queue_ops *ops, void *q)
{
    return ops->fill ? ops->fill(q) : ops->depth(q);
}

/* The bounded MPMC FIFO ring (queue_ring.c). */
sluice_err sluice__ring_create(size_t capacity, void **out);
extern const sluice__queue_ops sluice__ring_ops;

/* The FIFO ring with deep-queue batch claims (queue_discipline
 * fifo_batch; queue_ring.c, "Batch claims"): the ring plus min(workers,
 * 16) hands, in which a worker holds a run of tasks claimed with one CAS.
 * No evict (DROP_OLDEST pops, held tasks first), no pop_newest. */
sluice_err sluice__ring_batch_create(size_t capacity, unsigned workers, void **out);
/* fifo_batch: pops a worker makes one by one after a look that found the
 * queue too shallow to claim, before it looks again. Reading `tail` takes
 * the producers' hottest line from them (their next CAS on it misses), so
 * a worker serving a shallow queue does not look on every pop; a queue
 * that gets deep is seen within this many pops. (Here so that tests that
 * arrange a claim can queue this many fillers ahead of it.) */
#define SLUICE__BATCH_SHALLOW_SKIP 8u
extern const sluice__queue_ops sluice__ring_batch_ops;

/* The sharded queue (queue_sharded.c): `shards` rings whose limits add
 * up to capacity; shards in 1..16 and <= capacity (SLUICE_EINVAL
 * otherwise). sluice__sharded_shards_for picks min(workers, online CPUs,
 * 16, capacity), at least 1. evict takes from a rotating first shard;
 * no pop_newest or oldest_ns (no adaptive LIFO), no finish. */
sluice_err sluice__sharded_create(size_t capacity, unsigned shards, void **out);
unsigned sluice__sharded_shards_for(size_t capacity, unsigned workers);
extern const sluice__queue_ops sluice__sharded_ops;

/* The per-tenant fair queue (queue_fair.c). validate checks cfg->fair
 * (errbuf names the field); create allocates queue_capacity slots for
 * `pool` (its clock and histogram bounds must be set). tenant_ref
 * resolves a submit's tenant (handle, name or "default"); when it sets
 * *unref the submitter holds a reference and drops it with tenant_unref
 * once the task is queued, run or refused. */
sluice_err sluice__fair_validate(const sluice_pool_config *cfg, char *errbuf, size_t errlen);
sluice_err sluice__fair_create(struct sluice_pool *pool, void **out);
extern const sluice__queue_ops sluice__fair_ops;
sluice_err sluice__fair_tenant_ref(struct sluice_pool *pool, const sluice_submit_opts *opts,
                                   struct sluice_tenant **out, bool *unref);
void sluice__fair_tenant_unref(struct sluice_pool *pool, struct sluice_tenant *tenant);
/* The config of tenants not set by name, as in force now (fair pools). */
void sluice__fair_default_get(struct sluice_pool *pool, sluice_tenant_config *out);
/* Tests only: the allocator of tenant records (calloc unless a test made
 * it fail, to check that a batch that cannot allocate changes nothing).
 * Written by a test while no pool allocates tenants; read under the fair
 * queue's lock. */
extern void *(*sluice__fair_tenant_calloc)(size_t count, size_t size);
/* The bounded locked deque (queue_deque.c): FIFO, plus pop_newest and
 * oldest_ns for adaptive LIFO. */
sluice_err sluice__deque_create(size_t capacity, void **out);
extern const sluice__queue_ops sluice__deque_ops;

/* ---- per-thread counter shards ---------------------------------------- */

/* One histogram: nbounds + 1 buckets (the pool's bounds, then +Inf). A
 * shard's two (task time, then wait) are one allocation of
 * 2 x SLUICE__HIST_WORDS(nbounds) words: sluice__hist_pair_new. */
typedef struct sluice__hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t counts[]; /* nbounds + 1 */
} sluice__hist;

#define SLUICE__HIST_WORDS(nbounds) (2 + (nbounds) + 1)

/* Both histograms of a shard, zeroed; NULL when out of memory. */
static inline sluice__hist *sluice__hist_pair_new(size_t nbounds)
{
    return calloc(2 * SLUICE__HIST_WORDS(nbounds), sizeof(uint64_t));
}

/* The task-time (which 0) or wait (which 1) histogram of a pair. */
static inline sluice__hist *sluice__hist_of(sluice__hist *pair, size_t nbounds, int which)
{
    return (sluice__hist *)((_Atomic uint64_t *)pair + (size_t)which * SLUICE__HIST_WORDS(nbounds));
}

/*
 * Counters for the tasks one thread ran. A worker's shard has one writer
 * (its worker; later occupants of the same slot inherit it, ordered by
 * pool->mu), so it is updated with a relaxed load and store, no
 * read-modify-write; the caller shard (CALLER_RUNS tasks, run by any
 * submitter) is shared and uses fetch_add: every writer says which it
 * is (sluice__shard_add's `shared`). Readers sum with relaxed loads: a
 * snapshot is exact once the pool is quiescent.
 *
 * The histograms are not in the shard: `hists` points to a pair sized
 * for the pool's buckets (320 bytes with the default 17, where inline
 * maximum-size ones were 1,072 in every worker slot). A worker records
 * its first SLUICE__HIST_OWN_AFTER timed tasks into the caller shard's
 * pair (fetch_add, like a CALLER_RUNS task), so a worker that has timed
 * only a few tasks - every idle worker of a big pool that is mostly idle
 * - has no pair at all; after that it takes its own from the pool's page
 * slabs (worker.c, hist_pair_take), stored by its one writer (release;
 * readers load it acquire and read NULL as empty), and it stays with the
 * slot. The caller shard's is calloc'ed at create. A worker that cannot
 * get one records into the caller pair instead (worker.c, hist_record).
 * Not cache-line aligned here: a worker's shard shares its slot's first
 * line with the status word its one writer also stores on every task.
 */
typedef struct sluice__shard {
    _Atomic uint64_t completed;
    _Atomic uint64_t failed;
    _Atomic uint64_t panicked;
    _Atomic uint64_t shed;
    _Atomic(sluice__hist *) hists; /* task-time then wait; see above */
} sluice__shard;

/* Timed tasks a worker records into the caller shard's histogram pair
 * before it takes one of its own (see sluice__shard). A pool-wide bound
 * on the shared phase: at most K x this many samples ever go through the
 * shared line, however long the pool runs. */
#define SLUICE__HIST_OWN_AFTER 64u

/* ---- the running task's thread-local frame ----------------------------- */

/* What a panic records: the message and the backtrace. Only a panic needs
 * it, so it is not part of the frame every task pushes (it was ~900 of the
 * frame's ~1.4 KiB, and put one more stack page under every worker):
 * sluice_panic allocates one (frame->rec_owned), and the fault guard,
 * which cannot allocate in a signal handler, writes into the one
 * preallocated beside the worker's alternate signal stack. */
typedef struct sluice__panic_rec {
    int nframes;
    void *frames[SLUICE_BACKTRACE_MAX];
    char message[512];
} sluice__panic_rec;

typedef struct sluice__frame {
    struct sluice_pool *pool;
    struct sluice__run *worker; /* NULL for CALLER_RUNS */
    const sluice__task *task;
    /* Where sluice_panic and a recovered fault jump: the worker loop's
     * jump point (armed once per loop, not per task; worker.c) for a
     * worker's task, a local one for a CALLER_RUNS task. */
    sigjmp_buf *jump;
    struct sluice__frame *outer; /* the frame this one interrupts (a CALLER_RUNS task inside a task) */
    int ncleanup;
    bool panicking; /* set while cleanups run because of a panic or fault */
    bool rec_owned; /* rec was allocated by sluice_panic: freed when the task is over */
    int signo;
    sluice__panic_rec *rec; /* NULL until a panic (and if allocating one failed) */
    struct {
        void (*fn)(void *);
        void *arg;
    } cleanup[SLUICE_CLEANUP_MAX];
} sluice__frame;

/* ---- workers ---------------------------------------------------------- */

/*
 * A worker slot: what other threads read or write of a worker (stats,
 * /debug/pools and its stacks, drain, the parking lot), and what outlives
 * its thread (the counters of exited workers, the histogram pair).
 * Slots are taken from page slabs the pool maps (worker.c, slab_take),
 * never freed before the pool, and are two cache lines: the first holds
 * what the worker itself stores on every task (its status, the running
 * task's start and label, its counters), the second what the pool and
 * the wakers use. What only the running thread uses (the task being run,
 * its frame and jump point, the automatic sampling average) is not here
 * but in sluice__run, on the worker thread's stack.
 */
typedef struct sluice__worker {
    /* Written by the worker, read by stats/debug/drain. `status` packs the
     * state (sluice_worker_status, low 3 bits) with the count of tasks this
     * slot finished (shed ones too), so one atomic load sees both: a drain
     * report can never count a task as finished and still running. */
    SLUICE__ALIGNED _Atomic uint64_t status;
    _Atomic uint64_t since_ns;
    _Atomic(const char *) label;
    sluice__shard shard;
    /* Immutable once the slot exists: pool, index. Guarded by pool->mu:
     * thread, occupied, init_ok. The parking lot: the worker sleeps on
     * its own semaphore; park_next and parked are guarded by
     * pool->park_mu. */
    SLUICE__ALIGNED struct sluice_pool *pool;
    pthread_t thread;
    struct sluice__worker *park_next;
    unsigned index;
    bool occupied; /* a live thread owns this slot */
    bool init_ok;
    bool parked;
    sem_t wake;
} sluice__worker;

#if UINTPTR_MAX == UINT64_MAX && defined(__GLIBC__)
_Static_assert(sizeof(sluice__worker) == 2 * SLUICE__CACHELINE,
               "a worker slot is two cache lines (LP64 glibc)");
#endif

/*
 * A worker thread's own state, in worker_main's frame: the two stack
 * pages every thread touches (glibc's thread descriptor and static TLS
 * fill most of the top one) have room for it, so it costs an idle worker
 * no memory, where in the slot it was ~700 of 832 bytes. Only its thread
 * reads or writes it (the fault guard's signal handler runs on the same
 * thread); other threads see the worker through its slot. It lives above
 * the loop's jump point (worker_guarded), so a panic's jump leaves it
 * intact, and the landing finishes the task from it.
 */
typedef struct sluice__run {
    struct sluice_pool *pool;
    sluice__worker *slot;
    void *worker_state;   /* set by the worker_init hook */
    uint64_t task_avg_ns; /* moving average of timed task durations (automatic sampling) */
    unsigned hist_shared; /* timed tasks recorded into the caller pair (SLUICE__HIST_OWN_AFTER) */
    bool fault_retire;    /* set by the fault guard in RECOVER mode */
    void *altstack;
    sluice__panic_rec *fault_rec; /* beside the altstack: where the fault guard writes */
    /* The task being run and its frame live here, not in a function the
     * jump discards: the jump point is armed once per worker loop, and
     * after a panic the loop finishes the task from these (worker.c). */
    uint64_t cur_start; /* timing start of cur (0: not timed) */
    unsigned cur_word;  /* the timing word cur was started under */
    sluice__done done;  /* the last task's deferred finish (pop_finish) */
    sluice__task cur;
    sluice__frame frame;
    sigjmp_buf jump;
} sluice__run;

#define SLUICE__STATUS_STATE(v) ((sluice_worker_status)((v)&7u))
#define SLUICE__STATUS_COUNT(v) ((v) >> 3)

/* Single-writer update of a worker's status word (release: the counters
 * written before it are visible to whoever sees the new status). */
static inline void sluice__status_set(struct sluice__worker *w, sluice_worker_status st, uint64_t add)
{
    uint64_t v = atomic_load_explicit(&w->status, memory_order_relaxed);
    /* The state fits its 3 bits and the finished count never wraps. */
    SLUICE__ASSERT((uint64_t)st < 8u);
    SLUICE__ASSERT(SLUICE__STATUS_COUNT(v) + add <= (UINT64_MAX >> 3) && add <= 1u);
    atomic_store_explicit(&w->status, ((SLUICE__STATUS_COUNT(v) + add) << 3) | (uint64_t)st,
                          memory_order_release);
}

/* Decrement of a gauge that counts threads (idle, alive, starting,
 * waiting, ...): each decrement pairs with an earlier increment, so the
 * old value is never 0 (checked in Debug and sanitizer builds). seq_cst
 * like the increments it pairs with. */
static inline void sluice__gauge_dec(_Atomic unsigned *gauge)
{
    unsigned was = atomic_fetch_sub_explicit(gauge, 1, memory_order_seq_cst);
    SLUICE__ASSERT(was > 0);
    (void)was;
}

/* ---- the pool --------------------------------------------------------- */

struct sluice_pool {
    /* Immutable after create. */
    sluice_pool_config cfg; /* name/buckets point at the copies below */
    char name[SLUICE_POOL_NAME_MAX + 1];
    double bounds[SLUICE_HIST_MAX_BUCKETS];
    uint64_t bounds_ns[SLUICE_HIST_MAX_BUCKETS];
    size_t nbounds;
    bool doubling_buckets; /* bounds are exactly 100 us * 2^k: O(1) bucket lookup */
    const sluice_clock *clock;
    bool system_clock;
    void *q;
    const sluice__queue_ops *qops;
    bool fair;                         /* qops is the fair queue: tasks carry a tenant */
    struct sluice__overload *overload; /* CoDel / adaptive LIFO state (overload.c); NULL when off */
    size_t space_low; /* blocked submitters retry at this depth or below (pool.c, wait_for_space) */

    /* Hot, read by producers on every submit: kept on their own line. */
    SLUICE__ALIGNED _Atomic unsigned idle; /* workers parked or about to park (seq_cst, see worker.c) */
    _Atomic unsigned alive;                /* workers that may take tasks */
    _Atomic unsigned starting;       /* of those, threads created that have not run chain_spawn (seq_cst) */
    _Atomic unsigned capacity;       /* K */
    _Atomic unsigned waiting;        /* submitters blocked for space (seq_cst) */
    _Atomic bool space_signalled;    /* cv_space broadcast since a waiter last looked (seq_cst; worker.c) */
    _Atomic unsigned slow_inside;    /* BLOCK submitters inside the full-queue path */
    _Atomic unsigned caller_running; /* CALLER_RUNS tasks running on submitters */
    _Atomic bool destroy_started;    /* destroy has begun (read without mu) */
    _Atomic bool closed;
    _Atomic bool stop; /* running tasks are asked to stop */
    /* 0 = timing off; else N (time 1 task in N) | SLUICE__TIMING_AUTO when
     * workers adapt N to the task length. One word, so a worker's CAS from
     * the value it read fails if the rate or the mode changed since. */
    _Atomic unsigned timing_every;
    _Atomic uint64_t submit_timeout_ns;
    _Atomic uint64_t idle_expiry_ns;

    /* 1 while a worker spins for work (at most one does; worker.c). Its own
     * line: the spinner writes it, and producers read it only when a
     * worker is parked (seq_cst: pairs with the spinner's clearing and its
     * re-check of the queue). */
    SLUICE__ALIGNED _Atomic unsigned spinning;

    /* Overflow-path counters (not hot): fetch_add. */
    SLUICE__ALIGNED _Atomic uint64_t rejected;
    _Atomic uint64_t dropped;
    _Atomic uint64_t abandoned;
    _Atomic uint64_t caller_accepted; /* CALLER_RUNS tasks accepted (run or shed on the submitter) */
    _Atomic uint64_t caller_ran;      /* of those, the ones whose fn ran */
    _Atomic uint64_t expired_workers;
    _Atomic uint64_t retired_workers;
    _Atomic uint64_t started_workers;
    _Atomic uint64_t resize_events;
    _Atomic uint64_t init_failures;
    _Atomic uint64_t start_failures;      /* spawns that failed (sluice__spawn_locked) */
    _Atomic uint64_t start_fail_emitted;  /* start_failures when the last event went out */
    _Atomic uint64_t start_fail_event_ns; /* pool clock time of that event (rate limit) */
    _Atomic int start_fail_errno;         /* errno of the latest pthread_create failure */
    _Atomic unsigned workers_hwm;
    _Atomic unsigned waiting_hwm;
    _Atomic size_t depth_hwm;
    SLUICE__ALIGNED sluice__shard caller_shard; /* shared: sluice__shard_add(true, ...) */

    /* Guarded by mu. */
    SLUICE__ALIGNED pthread_mutex_t mu;
    pthread_cond_t cv_space; /* submitters waiting for queue space */
    pthread_cond_t cv_state; /* drain/destroy/prewarm waiting on workers */
    sluice__worker **slots;  /* never shrinks; slots outlive their threads */
    unsigned nslots;
    unsigned slots_cap; /* entries allocated in slots (grows by doubling) */
    void *slab;         /* the newest page slab of worker slots and histogram pairs (worker.c); linked */
    size_t slab_used;   /* bytes of it handed out */
    pthread_t *zombies; /* exited workers not yet joined */
    unsigned nzombies, zombies_cap;
    unsigned prewarm_pending; /* workers whose init has not reported */
    bool draining;            /* a drain is in progress */
    bool drained;             /* a drain has finished */
    bool destroying;

    /* Guarded by park_mu: the parking lot (see worker.c), a LIFO stack of
     * parked workers, each asleep on its own semaphore. */
    SLUICE__ALIGNED pthread_mutex_t park_mu;
    struct sluice__worker *parked_top;
};

#define SLUICE__TIMING_AUTO (1u << 31)
#define SLUICE__TIMING_N(v) ((v) & ~SLUICE__TIMING_AUTO)

/* The core's thread-locals use the initial-exec TLS model: in libsluice.so
 * the default (general-dynamic) model turns every access into a call to
 * __tls_get_addr, several per task. initial-exec costs a few bytes of the
 * static TLS surplus glibc reserves for libraries; the only thing it rules
 * out is dlopen()ing libsluice late into a process that has used that
 * surplus up, which no service does with its thread pool library. */
#define SLUICE__TLS _Thread_local __attribute__((tls_model("initial-exec")))

extern SLUICE__TLS sluice__frame *sluice__tls_frame;
extern SLUICE__TLS sluice__run *sluice__tls_worker;

/* ---- cross-file functions --------------------------------------------- */

/* worker.c */
sluice_err sluice__spawn_locked(struct sluice_pool *p);
/* After a failed sluice__spawn_locked, with no lock held: raise
 * SLUICE_EVENT_WORKER_START_FAILED (at most one a second). */
void sluice__report_start_failure(struct sluice_pool *p);
void sluice__spawn_for_work(struct sluice_pool *p, size_t want);
unsigned sluice__wake(struct sluice_pool *p, unsigned n);
void sluice__wake_all(struct sluice_pool *p);
void sluice__notify_space(struct sluice_pool *p);
/* Called by a worker that has just left tasks in its hand (fifo_batch):
 * wakes a parked worker if one is parked and none spins (seq_cst reads
 * after the claimer's seq_cst store of its hand; see queue_ring.c). */
void sluice__after_claim(struct sluice_pool *p);
/* Runs t on the calling submitter (CALLER_RUNS; counted in the caller
 * shard), or sheds it (deadline passed, context ended) to the abandon
 * handler on this thread. Returns true if t->fn ran. */
bool sluice__run_task(struct sluice_pool *p, sluice__task *t);
void sluice__join_zombies(struct sluice_pool *p);
/* Unmaps the page slabs of the worker slots and histogram pairs
 * (pool_free, after it has destroyed the slots' semaphores). */
void sluice__slabs_free(struct sluice_pool *p);
void sluice__abandon(struct sluice_pool *p, sluice__task *t, sluice_abandon_reason why);
void sluice__emit(struct sluice_pool *p, sluice_event_kind kind, unsigned worker, uint64_t old_value,
                  uint64_t new_value, sluice_err err, const char *detail, const sluice_drain_report *drain);

/* pool.c, for src/obs/stacks.c (/debug/pools/stacks): send `sig` to the
 * worker in slot `index` if that slot still holds the live thread
 * `thread`. Returns 0, ESRCH (the worker has exited or the slot has been
 * reused), or pthread_kill's error. */
int sluice__pool_signal_worker(struct sluice_pool *p, unsigned index, pthread_t thread, int sig);

/* overload.c: CoDel and adaptive LIFO at pop time (NULL p->overload: off).
 * create validates nothing (pool.c did) and fails only for memory or a
 * queue without the ops the mode needs. pop is the worker's pop when
 * overload is on: it may shed tasks (counted in w's shard and handed to
 * the abandon handler, no lock held) before it returns one to run. */
sluice_err sluice__overload_create(struct sluice_pool *p, struct sluice__overload **out);
void sluice__overload_destroy(struct sluice__overload *ov);
sluice__qres sluice__overload_pop(struct sluice_pool *p, sluice__worker *w, sluice__task *out);
void sluice__overload_stats(struct sluice__overload *ov, sluice_pool_stats *out);

/* panic.c */
void sluice__fault_guard_install(void);
void sluice__altstack_enter(sluice__run *r);
void sluice__unblock_fault_signals(void);
void sluice__altstack_leave(sluice__run *r);
void sluice__report_panic(struct sluice_pool *p, sluice__frame *f);
void sluice__backtrace_warmup(void);

/* fastclock.c: CLOCK_MONOTONIC ns, via an invariant TSC where there is one.
 * Call sluice__fastclock_init() once before the first read. */
void sluice__fastclock_init(void);
/* Nanoseconds that timing one task costs here (2 clock reads + 2
 * histogram updates), measured by sluice__fastclock_init. */
uint64_t sluice__timing_cost_ns(void);
uint64_t sluice__fastclock_now(void);

/* Time for task timing: the fast clock for system-clock pools, else the
 * pool's clock (so tests with a fake clock see exact durations). */
static inline uint64_t sluice__timing_now(const struct sluice_pool *p);

/* Every deadline the core computes from a duration goes through
 * sluice__add_sat (src/base/timing.h): now + duration, saturating at
 * UINT64_MAX, so a duration near UINT64_MAX means "practically never",
 * never a deadline in the past. */

/* Time on the pool clock. */
static inline uint64_t sluice__now(const struct sluice_pool *p)
{
    return sluice_clock_now(p->clock);
}

static inline uint64_t sluice__timing_now(const struct sluice_pool *p)
{
    return p->system_clock ? sluice__fastclock_now() : sluice_clock_now(p->clock);
}

/* Waits on cv until woken or until `deadline_ns` on the pool clock (0 =
 * no limit). With a non-system clock it waits at most
 * SLUICE_CLOCK_POLL_NS of real time, so callers must loop and re-check. */
void sluice__cond_wait_until(struct sluice_pool *p, pthread_cond_t *cv, pthread_mutex_t *mu,
                             uint64_t deadline_ns);

/* Raise a monotonic maximum. */
static inline void sluice__max_u(_Atomic unsigned *a, unsigned v)
{
    unsigned cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur &&
           !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline void sluice__max_z(_Atomic size_t *a, size_t v)
{
    size_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur &&
           !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Increment of a shard counter (see sluice__shard): `shared` for the
 * caller shard (any number of writers), false for a worker's own (one
 * writer: a load and a store, no read-modify-write). */
static inline void sluice__shard_add(bool shared, _Atomic uint64_t *c, uint64_t n)
{
    if (shared) {
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
    } else {
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
    }
}

static inline void sluice__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* SLUICE_CORE_INTERNAL_H */
