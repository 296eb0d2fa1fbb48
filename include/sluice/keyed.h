/*
 * sluice/keyed.h - a keyed serial executor: tasks with the same key run
 * one at a time, in submission order; tasks with different keys run in
 * parallel, up to K keys at once, on a pool.
 *
 * The reference text's event consumers and projectors want "K=1 for
 * ordering guarantees, then parallelised by partition" (appendix P19; P54,
 * P55): the orders of one account must apply in order, different
 * accounts in parallel. A pool of one worker per account does not scale,
 * and one pool of K workers reorders. A keyed executor sits on a pool you
 * give it: per key it keeps a FIFO; a key with queued tasks and nothing
 * running is "ready"; at most K runner tasks are on the pool at once, each
 * taking a ready key, running up to 16 of its tasks in order, and putting
 * the key back at the end of the ready queue if more arrived (so one busy
 * key cannot starve the others). A runner that finds no ready key
 * returns: no worker is ever held idle waiting for a busy key.
 *
 * Guarantees:
 *   - per key, tasks start in the order their submits returned
 *     SLUICE_OK, and a task starts only after the previous task of its key
 *     has returned (never two at once: the previous task's writes are
 *     visible to the next);
 *   - at most `max_active_keys` tasks run at once (and never more than
 *     the pool runs);
 *   - nothing is lost: every accepted task runs (completed, failed or
 *     panicked) or is handed to the abandon handler (dropped by
 *     DROP_OLDEST, or still queued at drain's deadline or destroy), so at
 *     quiescence
 *         submitted = completed + failed + panicked + dropped + abandoned;
 *   - no accepted task waits for another submit or a drain: a runner the
 *     pool drops (DROP_OLDEST) or sheds (CoDel) is replaced by the
 *     executor's timer thread, never from the pool's on_abandon (which
 *     must not block or call the pool): at once when the pool's queue has
 *     a free place; on a full queue after polling it (1, 2, 4, 8, then
 *     every 10 ms), and once no runner is left and 4 polls found it full,
 *     as any submit would (DROP_OLDEST then evicts for it). So a
 *     replacement starts up to 10 ms after the queue gets room (the next
 *     poll), while the executor's running runners keep taking its ready
 *     keys meanwhile. When the pool hands back the last runner at its
 *     drain deadline or destroy, or a replacement finds the pool closed,
 *     the waiting tasks go to the abandon handler at once, from the timer
 *     thread (reason DRAIN or DESTROY; counted in `abandoned`): the pool
 *     will never run them, and the executor calls it no more (a submit
 *     that needs a runner gets SLUICE_ECLOSED). The one exception: if the
 *     timer's thread cannot be started (thread creation fails), a runner
 *     the pool hands back is not replaced, and its keys wait for the next
 *     submit (which starts a runner, or, the pool closed for good, hands
 *     them back on its own thread), a drain or destroy; nothing is lost,
 *     and nothing is handed back inside the pool's on_abandon;
 *   - hand-backs at drain and destroy come key by key, each key's tasks in
 *     submission order, so a caller can persist them and replay in order.
 *
 * Keys are uint64_t; hash a string key yourself (sluice_keyed_hash does
 * FNV-1a). Two keys that collide are just two keys: only equal keys are
 * serialised.
 *
 * Backlog. At most `key_backlog` tasks wait per key and `total_backlog`
 * in all. Tasks a runner has taken for its current batch (at most
 * SLUICE_KEYED_RUN_BATCH of one key) count as running, not waiting: they
 * run, drain and destroy do not hand them back. A submit that would exceed either
 * follows `overflow`, as a pool does: BLOCK waits for space (bounded by
 * submit_timeout_ns), REJECT returns SLUICE_EFULL, DROP_OLDEST evicts the
 * oldest waiting task (of the same key when the key's bound is hit, the
 * oldest overall when the total is) to the abandon handler. CALLER_RUNS
 * is refused at create: running on the submitter would break the order.
 *
 * Example (the per-account ledger):
 *
 *     sluice_keyed_config kc;
 *     sluice_keyed_config_init(&kc);
 *     kc.name = "ledger";
 *     kc.pool = pool;                  // K workers shared with other work
 *     kc.max_active_keys = 8;          // at most 8 accounts at once
 *     kc.key_backlog = 1000;           // per account
 *     kc.total_backlog = 100000;
 *     kc.abandon_handler = requeue_entry;  // persisted for replay, in order
 *     sluice_keyed *ledger;
 *     if (sluice_keyed_create(&kc, &ledger, errbuf, sizeof errbuf)) ...;
 *     sluice_keyed_submit(ledger, entry->account_id, apply_entry, entry);
 *
 * Lock order: the executor's mutex, then its timer's (a replacement
 * runner is put on the timer under it); no task, handler or pool call
 * runs under it.
 */
#ifndef SLUICE_KEYED_H
#define SLUICE_KEYED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_keyed sluice_keyed;

#define SLUICE_KEYED_NAME_MAX 48
/* Tasks a runner takes from one key before it lets the next key go. */
#define SLUICE_KEYED_RUN_BATCH 16

/* A task handed back (valid only during the call). */
typedef struct sluice_keyed_abandoned {
    uint64_t key;
    sluice_task_fn fn;
    void *arg;
    sluice_abandon_reason reason; /* DROPPED, DRAIN or DESTROY */
} sluice_keyed_abandoned;

typedef struct sluice_keyed_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "keyed". The metrics label
     * (runner tasks are labelled "keyed", a static string: the pool may
     * read it after the executor is gone). */
    const char *name;
    /* Required: the pool the tasks run on (borrowed; it must outlive the
     * executor, whose timer thread may call it). It may run other work
     * too. */
    sluice_pool *pool;
    /* Most keys running at once (K); 0 = the pool's worker count (65536
     * for a pool of more). At most 65536. */
    unsigned max_active_keys;
    /* Most tasks waiting per key; 0 = 1024. */
    size_t key_backlog;
    /* Most tasks waiting in all; 0 = 65536. Must be >= key_backlog. */
    size_t total_backlog;
    /* BLOCK (default), REJECT or DROP_OLDEST; CALLER_RUNS is refused. */
    sluice_overflow overflow;
    /* Longest a BLOCK submit waits; 0 = no limit (until space or close). */
    uint64_t submit_timeout_ns;
    /* Gets each task the executor will not run, on the thread that
     * decided (a submitter for DROPPED, and for tasks a closed pool will
     * never run when the timer cannot start; the thread draining or destroying
     * the executor; the executor's timer thread when the pool hands back
     * the last runner at its drain deadline or destroy, or a replacement
     * runner finds the pool closed), with no lock held. Never inside the
     * pool's on_abandon, so pool.h's rule for that callback (must not
     * block or call the pool) is not this handler's: it may block (to
     * persist a task) and submit to other pools. It must not submit to
     * this executor under BLOCK. This executor's drain from inside it
     * returns SLUICE_EDEADLK; its destroy from inside it is a fatal misuse
     * (the process aborts with a message rather than free the executor
     * under the call). NULL: counted only (the arg is then the
     * caller's problem: set a handler when args own memory). */
    void (*abandon_handler)(const sluice_keyed_abandoned *task, void *user);
    void *user;
    /* Clock for submit timeouts and drain deadlines; NULL = the pool's. */
    const sluice_clock *clock;
} sluice_keyed_config;

/* sluice_keyed_config_init - zero cfg; the caller sets pool. */
SLUICE_API void sluice_keyed_config_init(sluice_keyed_config *cfg);

/*
 * sluice_keyed_create - an executor on cfg->pool.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf ("pool:
 * required", "overflow: caller_runs would run a key's task out of order;
 * use block, reject or drop_oldest", "total_backlog: must be >=
 * key_backlog (1024), got 10"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_keyed_destroy.
 */
SLUICE_API sluice_err sluice_keyed_create(const sluice_keyed_config *cfg, sluice_keyed **out, char *errbuf,
                                          size_t errlen);

/*
 * sluice_keyed_submit - queue fn(arg) behind the earlier tasks of `key`.
 * Returns:
 *   SLUICE_OK        accepted (it will run, or be handed back)
 *   SLUICE_EFULL     REJECT and a bound is reached
 *   SLUICE_ETIMEDOUT BLOCK and no space came within submit_timeout_ns
 *   SLUICE_EDEADLK   BLOCK, a bound is reached, and the caller is a task
 *                    of this executor (waiting could wait for itself)
 *   SLUICE_ECLOSED   draining or destroyed
 *   SLUICE_EINVAL    ex or fn NULL
 *   SLUICE_ENOMEM
 *   the pool's refusal (SLUICE_EFULL, SLUICE_ECLOSED, ...) when the task
 *   needed a new runner, the pool refused it and no runner is left
 * Ownership: on OK the executor owns the task until it runs or is handed
 * back; on any error the caller keeps arg.
 * Thread-safety: safe from any thread, including this executor's tasks
 * (a task may submit to its own key: it runs after the current one).
 */
SLUICE_API sluice_err sluice_keyed_submit(sluice_keyed *ex, uint64_t key, sluice_task_fn fn, void *arg);

/* sluice_keyed_try_submit - as submit, but never waits for the executor's
 * bounds: a reached key or total backlog is SLUICE_EFULL under BLOCK too.
 * A runner the task needs is submitted to the pool as submit's is: on a
 * full BLOCK pool that waits for space (at most the pool's submit
 * timeout), except on one of the pool's own workers, where a full pool
 * refuses it at once. A refused runner with no runner left to take the
 * task returns the pool's error and the caller keeps the task. */
SLUICE_API sluice_err sluice_keyed_try_submit(sluice_keyed *ex, uint64_t key, sluice_task_fn fn, void *arg);

/* What drain did. */
typedef struct sluice_keyed_drain_report {
    uint64_t completed;   /* tasks that ran during the drain */
    uint64_t handed_back; /* waiting tasks handed back at the deadline */
    uint64_t keys_handed_back;
    bool timed_out;
} sluice_keyed_drain_report;

/*
 * sluice_keyed_drain - stop accepting (submits get SLUICE_ECLOSED, blocked
 * ones wake with it) and wait up to timeout_ns (0 = no limit) for every
 * waiting and running task to finish. At the deadline the tasks still
 * waiting go to the abandon handler (reason DRAIN) key by key, each key's
 * in submission order; running tasks are left to finish (destroy waits).
 * Abandon-handler calls already under way on other threads (tasks the
 * pool handed back, on the timer thread; an eviction, on a submitter's)
 * are waited for, past the deadline if need be (as drain's own hand-back
 * runs past it): once drain returns no handler call is running, so the
 * handler's user may be freed (with no submit starting).
 * Returns: SLUICE_OK when all finished; SLUICE_ETIMEDOUT when the deadline
 * came first; SLUICE_EDEADLK from a task of this executor or from inside
 * its abandon handler. A second drain returns SLUICE_OK with an empty
 * report.
 * Thread-safety: any thread but this executor's tasks and abandon
 * handler; drains serialise. Deadlock hazard: a handler blocked on
 * something the drain's caller holds blocks drain.
 */
SLUICE_API sluice_err sluice_keyed_drain(sluice_keyed *ex, uint64_t timeout_ns,
                                         sluice_keyed_drain_report *report);

/*
 * sluice_keyed_destroy - close, hand back every waiting task (reason
 * DESTROY, key by key in order), wait for running tasks and runners to
 * leave, free. NULL is a no-op.
 * Thread-safety: once, not from a task of this executor, with no submit
 * starting; never from its abandon handler (the process aborts with a
 * message). Handler calls under way on other threads are waited for. Deadlock hazard: it waits for runners on
 * the pool: destroy the executor before the pool (the pool must outlive it: its timer thread may submit a
 * replacement runner until destroy stops it), or drain the pool first (runners it hands back give their tasks
 * back at once).
 */
SLUICE_API void sluice_keyed_destroy(sluice_keyed *ex);

typedef struct sluice_keyed_stats {
    /* gauges */
    size_t keys;            /* keys with a task waiting or running */
    unsigned active_keys;   /* keys running a task now */
    size_t queued;          /* tasks waiting, all keys */
    size_t longest_backlog; /* the most tasks waiting on one key */
    unsigned runners;       /* runner tasks on the pool now */
    unsigned waiting;       /* submitters blocked for space */
    bool closed;            /* drain or destroy has begun */
    /* counters */
    uint64_t submitted;
    uint64_t completed; /* returned 0 */
    uint64_t failed;    /* returned non-zero */
    uint64_t panicked;
    uint64_t rejected;  /* refused at submit (EFULL, ETIMEDOUT, EDEADLK, pool refusal) */
    uint64_t dropped;   /* evicted by DROP_OLDEST */
    uint64_t abandoned; /* handed back at drain or destroy */
    uint64_t runner_starts;
    /* high-water marks */
    size_t keys_hwm;
    size_t queued_hwm;
    size_t longest_backlog_hwm;
} sluice_keyed_stats;

/* sluice_keyed_stats_get - a snapshot under the executor's lock (O(keys)
 * for longest_backlog). Thread-safe. */
SLUICE_API void sluice_keyed_stats_get(sluice_keyed *ex, sluice_keyed_stats *out);
SLUICE_API const char *sluice_keyed_name(const sluice_keyed *ex);

/* sluice_keyed_hash - FNV-1a of a NUL-terminated string, for string keys. */
SLUICE_API uint64_t sluice_keyed_hash(const char *s);

#endif /* SLUICE_KEYED_H */
