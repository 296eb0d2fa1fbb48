/*
 * sluice/pool.h - bounded, drainable, fault-tolerant worker pools.
 *
 * A pool runs tasks (`int fn(void *arg)`) on at most K worker threads, with
 * a bounded FIFO queue in front of them. Submitting to a full queue follows
 * the pool's overflow policy (block, reject, run on the caller, or drop the
 * oldest). Nothing is lost silently: every task the pool accepted ends in
 * exactly one of completed, failed, panicked, dropped, shed or abandoned,
 * and every task it did not run is handed to the abandon handler with the
 * reason, so the caller can retry or persist it:
 *
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 *
 * holds exactly whenever the pool is quiescent (nothing queued or running).
 * Tasks refused at submit (SLUICE_EFULL, SLUICE_ETIMEDOUT, SLUICE_ECLOSED,
 * SLUICE_EDEADLK) were never accepted: the caller still owns them, and they
 * are counted in `rejected` (closed-pool refusals are not counted).
 *
 * Lifecycle: create -> submit/resize/stats ... -> drain -> destroy.
 * destroy() without drain() first abandons what is still queued.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"

typedef struct sluice_pool sluice_pool;

/* A task: 0 is success; any other value is a failure (counted). */
typedef int (*sluice_task_fn)(void *arg);

/*
 * The enums with names are each declared from one list, SLUICE_<ENUM>_MAP,
 * one row XX(ID, "name") per value in order: the enum's values, its
 * SLUICE_<ENUM>_COUNT_ sentinel (not a value; keep last), its name
 * function and its parser all come from the rows, so a new value is one
 * row (src/base/enums.h). Values are part of the ABI: rows are only ever
 * appended.
 */

/* What a full queue does to a new submission. */
#define SLUICE_OVERFLOW_MAP(XX)                                                                              \
    XX(BLOCK, "block")             /* wait for space (bounded by submit timeout / deadline) */               \
    XX(REJECT, "reject")           /* return SLUICE_EFULL at once */                                         \
    XX(CALLER_RUNS, "caller_runs") /* run the task on the submitting thread */                               \
    XX(DROP_OLDEST, "drop_oldest") /* evict the oldest queued task to the abandon handler */

typedef enum sluice_overflow {
#define SLUICE_OVERFLOW_ENUM_(id, name) SLUICE_OVERFLOW_##id,
    SLUICE_OVERFLOW_MAP(SLUICE_OVERFLOW_ENUM_)
#undef SLUICE_OVERFLOW_ENUM_
        SLUICE_OVERFLOW_COUNT_ /* not a policy; keep last */
} sluice_overflow;

/* Why a task was handed back instead of run. Reasons start at 1. */
#define SLUICE_ABANDON_REASON_MAP(XX)                                                                        \
    XX(DROPPED, "dropped") /* evicted by DROP_OLDEST to make room */                                         \
    XX(SHED, "shed")       /* deadline passed or context ended while queued, or CoDel shed it */             \
    XX(DRAIN, "drain")     /* still queued when the drain deadline passed */                                 \
    XX(DESTROY, "destroy") /* still queued when the pool was destroyed undrained */

typedef enum sluice_abandon_reason {
    SLUICE_ABANDON_NONE_ = 0, /* not a reason: the first row is 1 */
#define SLUICE_ABANDON_ENUM_(id, name) SLUICE_ABANDON_##id,
    SLUICE_ABANDON_REASON_MAP(SLUICE_ABANDON_ENUM_)
#undef SLUICE_ABANDON_ENUM_
        SLUICE_ABANDON_REASON_COUNT_ /* not a reason; keep last (the largest reason + 1) */
} sluice_abandon_reason;

/* How the opt-in fault guard treats SIGSEGV/SIGBUS/SIGFPE/SIGILL raised by
 * a task on one of this pool's workers (see sluice/fault.h). */
#define SLUICE_FAULT_MODE_MAP(XX)                                                                            \
    XX(OFF, "off")         /* no guard: the signal's default action (core dump) */                           \
    XX(RERAISE, "reraise") /* log backtrace, count a panic, re-raise: the process dies with a core */        \
    XX(RECOVER, "recover") /* log, count, retire the faulting worker and replace it */

typedef enum sluice_fault_mode {
#define SLUICE_FAULT_ENUM_(id, name) SLUICE_FAULT_##id,
    SLUICE_FAULT_MODE_MAP(SLUICE_FAULT_ENUM_)
#undef SLUICE_FAULT_ENUM_
        SLUICE_FAULT_MODE_COUNT_ /* not a mode; keep last */
} sluice_fault_mode;

/*
 * Lower-case names for logs, config files and JSON ("drop_oldest",
 * "reraise", "running"): the rows of the lists; "unknown" for a value
 * outside them (a _COUNT_ sentinel, a cast int). Static strings.
 * Thread-safe.
 */
SLUICE_API const char *sluice_abandon_reason_name(sluice_abandon_reason reason);
SLUICE_API const char *sluice_overflow_name(sluice_overflow policy);
SLUICE_API const char *sluice_fault_mode_name(sluice_fault_mode mode);

/*
 * The parsers, the inverse of the names: text exactly a row's name
 * (case-sensitive) sets *out and returns SLUICE_OK; anything else
 * (including NULL text or out) returns SLUICE_EINVAL and leaves *out
 * unchanged. Thread-safe.
 */
SLUICE_API sluice_err sluice_abandon_reason_parse(const char *text, sluice_abandon_reason *out);
SLUICE_API sluice_err sluice_overflow_parse(const char *text, sluice_overflow *out);
SLUICE_API sluice_err sluice_fault_mode_parse(const char *text, sluice_fault_mode *out);

/*
 * Overload queue management: what the queue does once tasks arrive faster
 * than the workers finish them for longer than a burst (Facebook's "Fail
 * at Scale"; CoDel, RFC 8289). Both modes watch the sojourn of the oldest
 * queued task (time since submit): the queue is *standing* once that has
 * stayed at or above `overload_target_ns` for a whole
 * `overload_interval_ns`, and stops standing as soon as the oldest task's
 * sojourn falls below the target or the queue empties.
 *   CODEL  while the queue stands, tasks at the head are shed to the
 *          abandon handler (SLUICE_ABANDON_SHED, counted in `shed` and in
 *          `codel_shed`): one when it starts standing, then one at each
 *          point of CoDel's schedule (intervals of interval/sqrt(n) after
 *          the n-th), and every task whose sojourn is above
 *          `overload_slough_ns` (folly's rule, so an open-loop overload
 *          cannot keep the queue long). Never a task below the target.
 *   LIFO   while the queue stands, workers take the newest task instead of
 *          the oldest, so the tasks served are the ones whose callers are
 *          still waiting; FIFO again once it stops standing.
 *   CODEL_LIFO  both: the newest is served while CoDel sheds at the oldest
 *          end.
 * LIFO modes use a locked deque instead of the lock-free ring; OFF and
 * CODEL keep the ring. With queue_discipline FAIR every mode composes with
 * the tenant queue: CoDel judges (and sheds) the task the weighted round
 * robin picked, counted against its tenant, and LIFO takes the newest task
 * of the tenant whose turn it is (the tenants' shares are unchanged). An overload pool stamps every task at
 * submit (one clock read), so it also times every task.
 */
#define SLUICE_OVERLOAD_MODE_MAP(XX)                                                                         \
    XX(OFF, "off")               /* FIFO; a task is shed only by its own deadline or context */              \
    XX(CODEL, "codel")           /* CoDel at the head of the FIFO */                                         \
    XX(LIFO, "lifo")             /* adaptive LIFO, nothing shed */                                           \
    XX(CODEL_LIFO, "codel+lifo") /* adaptive LIFO, with CoDel shedding the oldest */

typedef enum sluice_overload_mode {
#define SLUICE_OVERLOAD_ENUM_(id, name) SLUICE_OVERLOAD_##id,
    SLUICE_OVERLOAD_MODE_MAP(SLUICE_OVERLOAD_ENUM_)
#undef SLUICE_OVERLOAD_ENUM_
        SLUICE_OVERLOAD_MODE_COUNT_ /* not a mode; keep last */
} sluice_overload_mode;

/* "off", "codel", "lifo", "codel+lifo"; "unknown" out of range. Static.
 * The parser is the inverse (SLUICE_OK, or SLUICE_EINVAL and *out
 * unchanged). Thread-safe. */
SLUICE_API const char *sluice_overload_mode_name(sluice_overload_mode mode);
SLUICE_API sluice_err sluice_overload_mode_parse(const char *text, sluice_overload_mode *out);

/* The overload defaults (CoDel's and Fail at Scale's). */
#define SLUICE_OVERLOAD_TARGET_DEFAULT_NS (5ull * 1000 * 1000)
#define SLUICE_OVERLOAD_INTERVAL_DEFAULT_NS (100ull * 1000 * 1000)

/* A task handed back to the abandon handler. Valid only during the call. */
typedef struct sluice_abandoned {
    sluice_task_fn fn;
    void *arg;
    const char *label;    /* as given at submit, or NULL */
    uint64_t deadline_ns; /* 0 if none */
    sluice_ctx *ctx;      /* as given at submit, or NULL (still retained during the call) */
    sluice_abandon_reason reason;
} sluice_abandoned;

#define SLUICE_BACKTRACE_MAX 48

/* What the panic handler is told. Valid only during the call. */
typedef struct sluice_panic_info {
    const char *pool_name;
    unsigned worker_index;  /* the worker's number in its name, "name/3" */
    const char *message;    /* sluice_panic's formatted message, or the signal's description */
    int signal;             /* 0 for sluice_panic; the signal number for a caught fault */
    const char *task_label; /* the task's label, or NULL */
    void *const *frames;    /* raw return addresses, innermost first */
    int frame_count;
    bool caller_thread; /* true when the task ran on a submitter (CALLER_RUNS) */
} sluice_panic_info;

/*
 * sluice_backtrace_format - render frames as text, one "#i addr symbol+off"
 * per line, into buf (always NUL-terminated when len > 0).
 * Returns: the length it wanted (snprintf-style). Thread-safe; allocates
 * nothing (uses dladdr), so it is safe from a panic handler.
 */
SLUICE_API size_t sluice_backtrace_format(void *const *frames, int frame_count, char *buf, size_t len);

/* Lifecycle events, for logs. Delivered to the config's event_handler on
 * the thread where they happen; never one per task. */
typedef enum sluice_event_kind {
    SLUICE_EVENT_WORKER_START = 1, /* a worker thread started (worker_index) */
    SLUICE_EVENT_WORKER_EXIT,      /* a worker exited; reason in `detail`: "expired", "retired", "fault",
                                      "init-failed", "shutdown" */
    SLUICE_EVENT_RESIZE,           /* K changed from old_value to new_value */
    SLUICE_EVENT_DRAIN_START,      /* drain began; new_value = queued tasks, old_value = running */
    SLUICE_EVENT_DRAIN_END,        /* drain ended; `drain` holds the report */
    SLUICE_EVENT_SUBMIT_REFUSED,   /* a submit was refused with `err` (overflow path only; rate-limit in the
                                      sink) */
    SLUICE_EVENT_WORKER_START_FAILED, /* a worker thread could not be started: `err` SLUICE_ESYS
                                         (pthread_create; old_value = its errno, `detail` its text) or
                                         SLUICE_ENOMEM; new_value = start failures so far. At most one a
                                         second (pool clock): the count says how many in all. The pool
                                         runs with fewer workers until a later start succeeds. */
} sluice_event_kind;

typedef struct sluice_drain_report sluice_drain_report;

typedef struct sluice_pool_event {
    sluice_event_kind kind;
    const char *pool_name;
    unsigned worker_index;
    uint64_t old_value;
    uint64_t new_value;
    sluice_err err;
    const char *detail;
    const sluice_drain_report *drain;
} sluice_pool_event;

SLUICE_API const char *sluice_event_kind_name(sluice_event_kind kind);

/* How a pool orders the tasks waiting in its queue
 * (sluice_pool_config.queue_discipline). */
#define SLUICE_QUEUE_DISCIPLINE_MAP(XX)                                                                      \
    XX(FIFO, "fifo") /* one lock-free FIFO ring for every task: the default */                               \
    XX(FAIR, "fair") /* one FIFO per tenant, served by weighted deficit round robin (sluice/tenant.h) */     \
    XX(SHARDED, "sharded")       /* a lock-free ring per shard, min(K, CPUs, 16) shards: pushes spread over  \
                                    them, each worker pops its home shard and steals from the others. For    \
                                    throughput pools that need no FIFO order across the pool: order holds    \
                                    within a shard only, DROP_OLDEST evicts the oldest task of one shard,    \
                                    adaptive LIFO is refused. Capacity, depth, drain, deadlines and the      \
                                    other overflow policies behave as with FIFO. */                          \
    XX(FIFO_BATCH, "fifo_batch") /* the FIFO ring, where a worker that finds 16 or more tasks                \
                                    queued claims a run of a quarter of them (at most 32) with               \
                                    one CAS on the head and takes them one by one: one miss on               \
                                    the shared head per run instead of per task. FIFO within a               \
                                    run; across the pool a claimed task may start after newer                \
                                    ones. Claimed tasks still count in queue_depth and occupy                \
                                    their queue places, drain hands them back, and other workers             \
                                    take over a run whose claimer is busy in a long task. A push             \
                                    (so REJECT, try_submit and DROP_OLDEST too) may find the                 \
                                    queue full while a held run keeps places beyond it unused;               \
                                    DROP_OLDEST then evicts the oldest task, the held one whose              \
                                    place the push needs. Adaptive LIFO is refused. */

typedef enum sluice_queue_discipline {
#define SLUICE_QUEUE_ENUM_(id, name) SLUICE_QUEUE_##id,
    SLUICE_QUEUE_DISCIPLINE_MAP(SLUICE_QUEUE_ENUM_)
#undef SLUICE_QUEUE_ENUM_
        SLUICE_QUEUE_DISCIPLINE_COUNT_ /* not a discipline; keep last */
} sluice_queue_discipline;

/* What a submit gets when its tenant already has queued_limit tasks
 * queued (the pool's own overflow policy is for a full pool queue). */
#define SLUICE_TENANT_OVERFLOW_MAP(XX)                                                                       \
    XX(REJECT, "reject")           /* SLUICE_EFULL to this submit; other tenants still get in */             \
    XX(DROP_OLDEST, "drop_oldest") /* evict this tenant's own oldest queued task (dropped) */

typedef enum sluice_tenant_overflow {
#define SLUICE_TENANT_OVERFLOW_ENUM_(id, name) SLUICE_TENANT_OVERFLOW_##id,
    SLUICE_TENANT_OVERFLOW_MAP(SLUICE_TENANT_OVERFLOW_ENUM_)
#undef SLUICE_TENANT_OVERFLOW_ENUM_
        SLUICE_TENANT_OVERFLOW_COUNT_ /* not a policy; keep last */
} sluice_tenant_overflow;

/* Names ("fifo", "fair", "sharded", "fifo_batch"; "reject", "drop_oldest"; "unknown" outside the
 * lists) and parsers, as for the enums above (src/base/enums.h). */
SLUICE_API const char *sluice_queue_discipline_name(sluice_queue_discipline discipline);
SLUICE_API sluice_err sluice_queue_discipline_parse(const char *text, sluice_queue_discipline *out);
SLUICE_API const char *sluice_tenant_overflow_name(sluice_tenant_overflow policy);
SLUICE_API sluice_err sluice_tenant_overflow_parse(const char *text, sluice_tenant_overflow *out);

/* The most a tenant's weight may be. */
#define SLUICE_TENANT_WEIGHT_MAX 10000u

/* A tenant's share and bounds in a FAIR pool (sluice/tenant.h). Zero
 * everywhere is the default: weight 1, no limits of its own. */
typedef struct sluice_tenant_config {
    /* Share of the workers relative to the other tenants with queued work:
     * a tenant of weight 2 starts twice as many tasks per round as one of
     * weight 1. 0 = 1; at most SLUICE_TENANT_WEIGHT_MAX. A round serves
     * `weight` tasks of a tenant back to back, so a weight of 10000 lets
     * that tenant start 10000 tasks before the next tenant's turn. */
    unsigned weight;
    /* The most tasks of this tenant queued at once; 0 = no limit of its
     * own (the pool's queue_capacity still bounds it). A submit beyond it
     * gets `overflow`, while the other tenants still get in. */
    size_t queued_limit;
    /* The most tasks of this tenant running at once ("at most N of K");
     * 0 = no limit (up to K). Work-conserving unless `strict`: when no
     * other tenant has a task that may start, a tenant at its limit
     * borrows the idle workers. */
    unsigned running_limit;
    /* Hold running_limit even when workers sit idle. */
    bool strict;
    sluice_tenant_overflow overflow;
} sluice_tenant_config;

/* The fair queue's bounds (SLUICE_QUEUE_FAIR only; ignored for FIFO). */
typedef struct sluice_fair_config {
    /* The config of tenants not set with sluice_pool_tenant_set. */
    sluice_tenant_config tenant_default;
    /* Tenants tracked by name, each with its own queue and counters, not
     * counting those set with sluice_pool_tenant_set (always tracked).
     * Beyond it, a new name is hashed onto the shared shard queues with
     * shuffle sharding. 0 = 1024; at most 1048576. */
    unsigned max_tenants;
    /* The shared queues for untracked tenants. 0 = 64; at most 65536. */
    unsigned shard_queues;
    /* How many of the shard queues an untracked tenant is dealt (its hand,
     * from a hash of its name); each task goes to the shortest queue of the
     * hand. 0 = min(8, shard_queues); at most 16 and <= shard_queues. */
    unsigned hand_size;
    /* A tracked tenant with nothing queued or running, no handle held and
     * not set with sluice_pool_tenant_set is forgotten (its queue and
     * counters freed) after this long idle (pool clock). 0 = 60 s; 1 = at
     * the next look; UINT64_MAX = never (new names beyond max_tenants are
     * then sharded for good). */
    uint64_t idle_forget_ns;
    /* Refuse tenants not set with sluice_pool_tenant_set (SLUICE_ENOENT). */
    bool known_only;
} sluice_fair_config;

typedef struct sluice_pool_config {
    /* Required. Copied. Used in thread names ("name/3") and metrics. At
     * most SLUICE_POOL_NAME_MAX bytes of [A-Za-z0-9_.:-]. */
    const char *name;
    /* Required, > 0: K, the most tasks that run at once. Any value up to
     * UINT_MAX: threads start only as work arrives, so K is a ceiling. */
    unsigned workers;
    /* Workers kept alive when idle (never expire); started at create.
     * 0 = none. Must be <= workers. */
    unsigned min_workers;
    /* Required, > 0: the most tasks that wait in the queue. There is no
     * unbounded queue. At most SIZE_MAX >> 8 (SLUICE_EINVAL above); the
     * queue is allocated at create (64 bytes a task), so a capacity beyond
     * memory fails with SLUICE_ENOMEM naming the field. */
    size_t queue_capacity;
    sluice_overflow overflow;
    /* Longest a blocking submit waits for space; 0 = wait without limit
     * (until the pool closes or the per-call deadline passes). Deadlines
     * computed from durations saturate: UINT64_MAX is as good as no limit,
     * never a deadline in the past. */
    uint64_t submit_timeout_ns;
    /* Workers above min_workers idle longer than this exit; 0 = never;
     * 1 = as soon as they park; UINT64_MAX = never (saturates). */
    uint64_t idle_expiry_ns;
    /* Start all K workers and run their init hooks before create returns. */
    bool prewarm;
    /* Worker thread stack size in bytes; 0 = the system default; at least
     * 16384. A size the system cannot map makes thread starts fail:
     * counted in worker_start_failures (with prewarm, create fails with
     * SLUICE_ESYS). */
    size_t stack_size;

    /* Runs on each new worker thread before its first task. Return 0 and
     * set *worker_state (reachable in tasks via sluice_worker_state()), or
     * non-zero to refuse: the worker exits (with prewarm, create fails with
     * SLUICE_EINIT). Queued tasks wait for a worker whose init succeeds: the
     * next submit starts another, a BLOCK submitter waiting on a full queue
     * with no worker left retries every 10 ms, and a drain does too, so a
     * drain with a timeout hands them back if every init keeps refusing,
     * while drain(0) waits for one to succeed. */
    int (*worker_init)(void *user, unsigned worker_index, void **worker_state);
    /* Runs on each worker thread as it exits (expiry, shrink, drain). */
    void (*worker_fini)(void *user, unsigned worker_index, void *worker_state);
    /* Called on the worker (or caller) thread after a task panicked and
     * the worker unwound; the worker then goes on. NULL: a line on stderr. */
    void (*panic_handler)(const sluice_panic_info *info, void *user);
    /* Called with each task the pool will not run. NULL: counted only. It
     * runs on whichever thread decided: a submitter for DROP_OLDEST; for
     * SHED the worker that was about to start the task, or the submitter
     * itself when CALLER_RUNS finds the task's deadline passed (or its
     * context ended) before running it; the draining or destroying thread
     * for DRAIN/DESTROY. It must not submit to a full BLOCK pool of its
     * own. */
    void (*abandon_handler)(const sluice_abandoned *task, void *user);
    /* Lifecycle events for logs (see sluice_pool_event); NULL: none. Must
     * not block or call back into the pool except stats/workers getters. */
    void (*event_handler)(const sluice_pool_event *event, void *user);
    void *user;

    sluice_fault_mode fault_mode;

    /* Timing histograms (task run time; time from submit to start).
     * Upper bounds in seconds, strictly increasing; NULL/0 = the default
     * 0.0001 * 2^k for k = 0..16. Each > 0 and <= 1e9 s; at most
     * SLUICE_HIST_MAX_BUCKETS. */
    const double *histogram_buckets;
    size_t histogram_bucket_count;
    /* Record timing for 1 task in N; 1 = every task; at most 2^31 - 1
     * (a larger N, here or in sluice_pool_set_timing_sample, is taken as
     * 2^31 - 1).
     * The default, SLUICE_TIMING_SAMPLE_AUTO (0), picks N from the tasks'
     * length so timing costs about 1% of task time: every task once tasks
     * take 100x the measured cost of timing one (a few microseconds), fewer
     * for shorter ones (at most 1 in 256); with a custom clock (tests) it
     * times every task. A thread's first submit is always timed. Counters
     * are never sampled; sluice_pool_stats_get reports the N in use.
     * (Builds before 2026-11-29 read 0 as every task: use 1 for that.) */
    unsigned timing_sample_every;
    /* Turn timing (and the per-task clock reads) off altogether. */
    bool timing_disabled;

    /* The clock for deadlines, timeouts and expiry; NULL = system. */
    const sluice_clock *clock;

    /* The queue's order: FIFO (default), FAIR per tenant, SHARDED or
     * FIFO_BATCH (see the list above). A FIFO_BATCH queue is the FIFO ring
     * plus min(K at create, 16) 64-byte hands. A
     * FAIR queue is a mutex-guarded set of per-tenant FIFOs (about 80
     * bytes a slot, allocated at create) and stamps every task for the
     * per-tenant wait histograms; see sluice/tenant.h. A SHARDED queue is
     * min(K at create, the CPUs in the creating thread's affinity mask, 16, queue_capacity) rings whose
     * capacities add up to queue_capacity (64 bytes a slot, resident as
     * the queue gets deep); the shard count does not follow resize. */
    sluice_queue_discipline queue_discipline;
    sluice_fair_config fair;
    /* Overload queue management (see sluice_overload_mode); OFF by
     * default. Fixed at create. */
    sluice_overload_mode overload;
    /* The sojourn a queue may keep: 0 = 5 ms (the default); at most
     * overload_interval_ns; 1 = any wait counts as above target;
     * UINT64_MAX (with the interval at UINT64_MAX) = never above. */
    uint64_t overload_target_ns;
    /* How long the oldest task's sojourn must stay at or above the target
     * before the queue counts as standing, and the base of CoDel's drop
     * schedule: 0 = 100 ms (the default); UINT64_MAX = never standing
     * (deadlines saturate). */
    uint64_t overload_interval_ns;
    /* CODEL modes: while the queue stands, every task that waited longer
     * than this is shed: 0 = 2 x target (the default); at least the
     * target; UINT64_MAX = never (CoDel's schedule alone, as RFC 8289). */
    uint64_t overload_slough_ns;
} sluice_pool_config;

/* timing_sample_every: choose the sample rate from the task length. */
#define SLUICE_TIMING_SAMPLE_AUTO 0u

#define SLUICE_POOL_NAME_MAX 48
#define SLUICE_HIST_MAX_BUCKETS 64
#define SLUICE_HIST_DEFAULT_BUCKETS 17

/* sluice_pool_config_init - zero the struct and fill the defaults. The
 * caller still sets name, workers and queue_capacity. */
SLUICE_API void sluice_pool_config_init(sluice_pool_config *cfg);

/*
 * sluice_pool_create - validate cfg and start a pool.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf (for
 * example "queue_capacity: must be > 0 (an unbounded queue is not
 * offered)"); SLUICE_ENOMEM (with "queue_capacity: cannot allocate ..."
 * when the queue is too big to allocate); SLUICE_ESYS (thread creation
 * failed, with "workers: could not start a worker thread: ...");
 * SLUICE_EINIT (prewarm and a worker_init hook refused). On any error
 * nothing is left behind: no thread, no memory, *out untouched.
 * Ownership: *out belongs to the caller; free it with sluice_pool_destroy.
 * cfg and the strings in it are copied; the histogram bounds too.
 * errbuf: optional (NULL, 0), always NUL-terminated when given.
 */
SLUICE_API sluice_err sluice_pool_create(const sluice_pool_config *cfg, sluice_pool **out, char *errbuf,
                                         size_t errlen);

/* Per-call options for sluice_pool_submit_ex; zero is "none" everywhere. */
typedef struct sluice_submit_opts {
    /* Absolute time (pool clock) after which a still-queued task is not
     * run but shed to the abandon handler. */
    uint64_t deadline_ns;
    /* Absolute time (pool clock) after which a blocking submit gives up
     * with SLUICE_ETIMEDOUT; combined with the pool's submit timeout (the
     * earlier wins). */
    uint64_t submit_deadline_ns;
    /* A context: if it is done before the task starts, the task is shed;
     * a blocking submit gives up with its error; a running task sees it
     * through sluice_task_should_stop(). Retained while queued. */
    sluice_ctx *ctx;
    /* A static string shown in /debug/pools and panic reports. Not copied:
     * it must outlive the task. */
    const char *label;
    /* If set, this task, when handed back instead of run (dropped, shed,
     * drain deadline, destroy), goes to this function instead of the
     * pool's abandon_handler, so code that submits to a pool it does not
     * own (a library, a health probe, a task group) gets its own tasks
     * back and the pool's owner never sees an `arg` it cannot free. The
     * counters are the same either way. Called on the thread that hands
     * the task back (a worker, a submitter under DROP_OLDEST, a CALLER_RUNS
     * submitter shedding it, the draining or destroying thread), with no
     * pool lock held; it must not block or
     * call back into the pool except stats getters. */
    void (*on_abandon)(const sluice_abandoned *task);
    /* FAIR pools: the tenant the task belongs to, as a handle from
     * sluice_pool_tenant_acquire (the fast path: no lookup), or else by
     * name (a hash lookup under the queue's lock per submit; a new name is
     * tracked or sharded as sluice/tenant.h says). Neither: the tenant
     * "default". A bad name gives SLUICE_EINVAL, a name refused by
     * known_only SLUICE_ENOENT, a tenant given to a FIFO pool
     * SLUICE_ENOTSUP, a handle of another pool SLUICE_EINVAL. */
    struct sluice_tenant *tenant;
    const char *tenant_name;
} sluice_submit_opts;

/*
 * sluice_pool_submit - queue fn(arg), applying the overflow policy when the
 * queue is full.
 * Returns:
 *   SLUICE_OK        accepted (queued, or run on this thread by CALLER_RUNS:
 *                    then it has already run and been counted)
 *   SLUICE_EFULL     REJECT policy and the queue is full; or (FAIR) the
 *                    task's tenant has queued_limit tasks queued and its
 *                    overflow is REJECT
 *   SLUICE_ETIMEDOUT BLOCK policy and no space came within the timeout
 *   SLUICE_ECLOSED   the pool is draining or destroyed
 *   SLUICE_EDEADLK   BLOCK policy, the queue is full and the caller is a
 *                    worker of this pool: waiting could deadlock
 *   SLUICE_ECANCELED/ETIMEDOUT from opts->ctx while blocked
 *   SLUICE_EINVAL    pool or fn is NULL; a bad tenant name or a tenant
 *                    handle of another pool
 *   SLUICE_ENOENT    (FAIR, known_only) a tenant not set for this pool
 *   SLUICE_ENOTSUP   a tenant given to a FIFO pool
 *   SLUICE_ENOMEM    (FAIR) a new tenant could not be allocated
 * Ownership: on OK the pool owns the task until it runs or is handed back;
 * on any error the caller keeps arg.
 * Thread-safety: safe from any number of threads, including workers.
 * Deadlock hazard: under BLOCK with no timeout, a submit from a thread that
 * a running task waits on can wait forever; use a timeout or deadline.
 * Blocking: a BLOCK submitter that finds the queue full sleeps until a
 * quarter of the queue is free (at least one slot), not until the first
 * slot frees, so a producer faster than the workers wakes once per quarter
 * queue rather than once per task. While one sleeps, later submits do not
 * take the slots that free meanwhile: they join the wait (blocked
 * submitters go first). When its timeout or deadline passes it takes any
 * free slot: ETIMEDOUT means the queue was full at the deadline.
 */
SLUICE_API sluice_err sluice_pool_submit(sluice_pool *pool, sluice_task_fn fn, void *arg);
SLUICE_API sluice_err sluice_pool_submit_ex(sluice_pool *pool, sluice_task_fn fn, void *arg,
                                            const sluice_submit_opts *opts);

/*
 * sluice_pool_try_submit - like submit but never blocks: a full queue gives
 * SLUICE_EFULL under BLOCK and REJECT; CALLER_RUNS and DROP_OLDEST apply
 * as usual (CALLER_RUNS then runs the task before returning). Under BLOCK
 * it also gives SLUICE_EFULL while blocked submitters wait for space: they
 * go first.
 */
SLUICE_API sluice_err sluice_pool_try_submit(sluice_pool *pool, sluice_task_fn fn, void *arg);

/* One task of a batch. */
typedef struct sluice_task_spec {
    sluice_task_fn fn;
    void *arg;
    const sluice_submit_opts *opts; /* NULL for none */
} sluice_task_spec;

/*
 * sluice_pool_submit_batch - submit tasks[0..n) in order, as if by
 * sluice_pool_submit each (or try_submit when `nonblocking`), stopping at
 * the first refusal.
 * Returns: SLUICE_OK when all n were accepted, else the first refusal's
 * error. *accepted (required) is how many, from the start, were accepted:
 * the caller still owns tasks[*accepted..n).
 * Cost: on FIFO and fifo_batch pools, consecutive tasks for no tenant are
 * queued in runs of up to 32 with one claim of the queue's places (one
 * atomic on the producers' shared line per run, not per task), and one
 * wake-up decision per run; a run is cut to the places free when it starts,
 * and none is tried with fewer than 2 free or while a blocked submitter
 * waits (it goes first). A run stops where the queue has no free place;
 * from there the tasks go one by one, exactly as single submits (blocking,
 * overflow policy, refusal), until places free again. Sharded, fair and
 * overload (LIFO) queues take every task singly, with one wake-up decision
 * per 64.
 */
SLUICE_API sluice_err sluice_pool_submit_batch(sluice_pool *pool, const sluice_task_spec *tasks, size_t n,
                                               bool nonblocking, size_t *accepted);

/*
 * sluice_pool_resize - set K. Growing starts workers at once when work is
 * queued (else they start as work arrives); shrinking retires workers as
 * their current task ends. A task starts only while fewer than K tasks
 * run (a worker that was already taking a task when resize() was called
 * may still start it: resize is not a barrier). Returns SLUICE_OK,
 * SLUICE_EINVAL (k == 0 or k < min_workers),
 * SLUICE_ECLOSED (draining).
 * Thread-safety: safe from any thread, also from inside a task.
 */
SLUICE_API sluice_err sluice_pool_resize(sluice_pool *pool, unsigned k);

/* sluice_pool_set_submit_timeout - change the submit timeout live. */
SLUICE_API void sluice_pool_set_submit_timeout(sluice_pool *pool, uint64_t timeout_ns);
/* sluice_pool_set_timing_sample - change the timing sample rate live: 1 =
 * every task, N = 1 in N, SLUICE_TIMING_SAMPLE_AUTO = follow the task
 * length. No effect on a pool created with timing_disabled. Thread-safe. */
SLUICE_API void sluice_pool_set_timing_sample(sluice_pool *pool, unsigned every);
/* sluice_pool_set_idle_expiry - change the idle expiry live (0 = never). */
SLUICE_API void sluice_pool_set_idle_expiry(sluice_pool *pool, uint64_t expiry_ns);

/* The result of a drain. */
struct sluice_drain_report {
    uint64_t completed;     /* tasks that finished (any outcome, shed too) during the drain, up to
                               the deadline */
    uint64_t still_running; /* tasks running at the deadline, counted at the deadline before anything
                               is handed back (they saw their stop flag) */
    uint64_t handed_back;   /* queued tasks handed to the abandon handler at the deadline */
    uint64_t elapsed_ns;
    bool timed_out;
};

/*
 * sluice_pool_drain - stop accepting (submit returns SLUICE_ECLOSED, and
 * blocked submitters wake with it), run what is queued and running, and
 * wait up to timeout_ns (0 = no limit; UINT64_MAX is as good as none: the
 * deadline saturates). At the deadline, still-queued
 * tasks go to the abandon handler (SLUICE_ABANDON_DRAIN) and running tasks
 * see sluice_task_should_stop() turn true; drain returns without waiting
 * for them (destroy joins them).
 * Returns: SLUICE_OK when everything finished in time; SLUICE_ETIMEDOUT
 * when the deadline came first (report says what happened); SLUICE_EDEADLK
 * when called from a worker of this pool. Calling it again after a
 * finished drain returns SLUICE_OK with an empty report.
 * Thread-safety: safe from any non-worker thread; concurrent drains
 * serialise.
 */
SLUICE_API sluice_err sluice_pool_drain(sluice_pool *pool, uint64_t timeout_ns, sluice_drain_report *report);

/*
 * sluice_pool_destroy - close the pool if open, hand back anything queued
 * (SLUICE_ABANDON_DESTROY), ask running tasks to stop, wake blocked
 * submitters with SLUICE_ECLOSED and wait until they have left, join every
 * worker (waiting for running tasks to return) and free everything.
 * NULL is a no-op.
 * Thread-safety: call once, from a thread that is not a worker of this
 * pool and not inside one of its tasks, after which no new call may start
 * on the pool. "Calls already blocked inside submit" means submitters
 * waiting for queue space or running a CALLER_RUNS task; a submit that has
 * not yet found the queue full must not race with destroy. Calls already
 * blocked inside submit are released safely, and a drain already running
 * on another thread is waited for (destroy then hands back nothing it
 * has not already handed back). Deadlock hazard: destroy waits for running
 * tasks to return; a task that never checks sluice_task_should_stop() and
 * never returns blocks it for ever.
 */
SLUICE_API void sluice_pool_destroy(sluice_pool *pool);

/* A snapshot of a pool. Gauges are the values at the time of the call;
 * counters are totals since create. */
typedef struct sluice_pool_stats {
    /* gauges */
    unsigned running;  /* tasks running now */
    unsigned capacity; /* K */
    unsigned workers;  /* worker threads alive */
    unsigned idle;     /* of those, parked waiting for work */
    unsigned waiting;  /* submitters blocked for queue space */
    size_t queue_depth;
    size_t queue_capacity;
    bool draining; /* the queue is closed (a drain or destroy began): submits get SLUICE_ECLOSED */
    /* counters */
    uint64_t submitted;       /* accepted (queued or run by the caller) */
    uint64_t completed;       /* fn returned 0 */
    uint64_t failed;          /* fn returned non-zero */
    uint64_t panicked;        /* sluice_panic or a caught fault */
    uint64_t rejected;        /* refused at submit: EFULL, ETIMEDOUT, EDEADLK, or the submit ctx ended */
    uint64_t dropped;         /* evicted by DROP_OLDEST */
    uint64_t shed;            /* deadline/context passed while queued, or shed by CoDel */
    uint64_t abandoned;       /* handed back at drain or destroy */
    uint64_t caller_ran;      /* of submitted, how many ran on the submitter (CALLER_RUNS); a task shed
                                 there (deadline passed, context ended) counts in `shed`, not here */
    uint64_t expired_workers; /* idle workers that exited by expiry */
    uint64_t retired_workers; /* workers that exited by shrink or fault recovery */
    uint64_t started_workers; /* worker threads started in all */
    uint64_t resize_events;
    uint64_t init_failures; /* worker_init hooks that refused */
    /* high-water marks */
    unsigned workers_hwm;
    unsigned waiting_hwm;
    size_t queue_depth_hwm; /* sampled on the submit path; exact when the queue filled */
    /* timing: 1 task in this many is timed now (0: timing off). Under
     * SLUICE_TIMING_SAMPLE_AUTO it follows the task length. */
    unsigned timing_sample_every;
    /* counter: worker threads the pool tried and failed to start
     * (pthread_create refused, for example under RLIMIT_NPROC, or no
     * memory). Non-zero means the pool may be running below K; see
     * SLUICE_EVENT_WORKER_START_FAILED. */
    uint64_t worker_start_failures;
    /* Overload queue management (all zero when it is off). */
    uint64_t codel_shed;    /* counter: of `shed`, the tasks CoDel shed (schedule or slough) */
    uint64_t lifo_switches; /* counter: times the queue switched from FIFO to LIFO */
    bool lifo;              /* gauge: the workers take the newest task now */
    bool codel_dropping;    /* gauge: the queue stands and CoDel is shedding */
} sluice_pool_stats;

/*
 * sluice_pool_stats_get - fill *out. Counters are summed from per-worker
 * shards, so one snapshot is not atomic across fields while tasks run;
 * at quiescence it is exact.
 * Thread-safety: safe from any thread; takes the pool's registry lock
 * briefly, never blocks workers.
 */
SLUICE_API void sluice_pool_stats_get(sluice_pool *pool, sluice_pool_stats *out);

/* Which histogram. */
typedef enum sluice_hist_kind {
    SLUICE_HIST_TASK = 0, /* time running */
    SLUICE_HIST_WAIT = 1, /* time from submit to start */
} sluice_hist_kind;

/* A histogram snapshot: cumulative is NOT applied: counts[i] is the count
 * of observations <= bounds[i] and > bounds[i-1]; counts[bucket_count] is
 * the overflow (+Inf) bucket. */
typedef struct sluice_histogram {
    size_t bucket_count;                    /* number of finite bounds */
    double bounds[SLUICE_HIST_MAX_BUCKETS]; /* seconds */
    uint64_t counts[SLUICE_HIST_MAX_BUCKETS + 1];
    uint64_t count;
    double sum_seconds;
} sluice_histogram;

/* sluice_pool_histogram_get - snapshot one timing histogram. Thread-safe. */
SLUICE_API void sluice_pool_histogram_get(sluice_pool *pool, sluice_hist_kind kind, sluice_histogram *out);

/* The state of one worker, for /debug/pools. At most 8 (it is packed in
 * 3 bits of the worker's status word). */
#define SLUICE_WORKER_STATUS_MAP(XX)                                                                         \
    XX(STARTING, "starting")                                                                                 \
    XX(IDLE, "idle")                                                                                         \
    XX(RUNNING, "running")                                                                                   \
    XX(EXITING, "exiting")

typedef enum sluice_worker_state {
#define SLUICE_WORKER_ENUM_(id, name) SLUICE_WORKER_##id,
    SLUICE_WORKER_STATUS_MAP(SLUICE_WORKER_ENUM_)
#undef SLUICE_WORKER_ENUM_
        SLUICE_WORKER_STATUS_COUNT_ /* not a status; keep last */
} sluice_worker_status;

/* "starting", "idle", "running", "exiting"; "unknown" outside the list.
 * The parser as for the enums above. Thread-safe. */
SLUICE_API const char *sluice_worker_status_name(sluice_worker_status status);
SLUICE_API sluice_err sluice_worker_status_parse(const char *text, sluice_worker_status *out);

typedef struct sluice_worker_info {
    unsigned index;
    sluice_worker_status state;
    /* Pool clock time the state began. For a running task that timing did
     * not sample (timing off, or 1 in N), the first time this call saw it
     * running: a lower bound of its age, exact from the second look on to
     * the time between looks. 0 if unknown. */
    uint64_t since_ns;
    const char *task_label; /* label of the running task, or NULL */
    uint64_t tasks_run;
    pthread_t thread; /* for sluice_thread_backtrace and friends */
} sluice_worker_info;

/*
 * sluice_pool_workers_get - fill out[0..cap) with live workers.
 * Returns: the number of live workers (which may exceed cap: call again
 * with a bigger array). Thread-safe; the `thread` handles are valid only
 * while the worker lives (a worker may exit right after the call).
 */
SLUICE_API size_t sluice_pool_workers_get(sluice_pool *pool, sluice_worker_info *out, size_t cap);

/*
 * sluice_pool_queue_bytes - the memory a pool's queue allocates, and
 * touches, at create for `queue_capacity` slots: every slot is written
 * once at create, so this is resident from the start, not as the queue
 * fills. For capacity planning and `sluice lint`'s queue-memory rule.
 * Returns: bytes; 0 for a capacity of 0 (refused by create); SIZE_MAX when
 * the size cannot be represented (create refuses that capacity too).
 * Thread-safety: pure function.
 */
SLUICE_API size_t sluice_pool_queue_bytes(size_t queue_capacity);

/* Read-only views of the pool's configuration. */
SLUICE_API const char *sluice_pool_name(const sluice_pool *pool);
SLUICE_API void sluice_pool_config_get(const sluice_pool *pool, sluice_pool_config *out);
SLUICE_API const sluice_clock *sluice_pool_clock(const sluice_pool *pool);

#endif /* SLUICE_POOL_H */
