/*
 * sluice/group.h - task groups (errgroup): fan out, bound the fan-out, wait
 * for all, stop at the first error.
 *
 * A group runs tasks (`int fn(void *arg)`) on a pool, either one the
 * caller gives (cfg.pool: the tasks share that pool's K and queue) or a
 * private pool of cfg.threads threads that the group owns. At most
 * cfg.limit of the group's tasks are in flight (queued or running) at
 * once: run() waits for a slot, try_run() returns SLUICE_EAGAIN instead.
 *
 * Errors. A task's return value is its result: 0 is success; a value that
 * is a sluice_err code (1 .. SLUICE_ERR_COUNT_-1) is that error, so a task
 * can `return sluice_sem_acquire(...)`; any other non-zero value (-1, 42)
 * is SLUICE_ETASK. A task that calls sluice_panic (or, with the pool's
 * fault guard in RECOVER mode, faults) is reported as SLUICE_ETASK with
 * `panicked` set and its message. The first error cancels the group's
 * context with that error as the cause; tasks that have not started by
 * then are skipped (never run, counted); running ones should watch
 * sluice_group_ctx() (or sluice_task_should_stop(), when the group's
 * context is passed down as theirs). wait() returns the first error.
 *
 * Waiting from inside the pool (the deadlock rule). wait() and a run()
 * that has to wait for a slot, when called from inside a task of the
 * group's own pool, do not just block: the calling worker HELPS, running
 * the group's not-yet-started tasks itself, one after another, until none
 * is left; only then does it block, for tasks already running on other
 * workers (which need nothing from it). So a K=1 pool whose only worker
 * fans out and waits completes instead of deadlocking. A helped task runs
 * nested inside the waiting task (sluice_task_ctx() and friends describe
 * the waiting task); a panic in it is caught and reported to wait() like
 * any other, and the waiting task carries on. Helping nests (a helped task
 * that itself waits helps in turn) up to the task's cleanup-handler depth
 * (SLUICE_CLEANUP_MAX, one slot per level); past it the caller blocks
 * without helping. wait() from inside one of
 * the group's own tasks can never finish (it would wait for itself) and
 * returns SLUICE_EDEADLK at once.
 *
 * Pools that hand tasks back. A group submits its tasks with no deadline
 * and no context, so a pool never sheds them; but a pool with
 * DROP_OLDEST, or one drained or destroyed before the group's wait
 * returns, hands tasks back. The group submits each task with its own
 * on_abandon (sluice_submit_opts), so those come back to the group, not
 * to the pool's abandon handler, whatever that handler does: they are
 * accounted as failed (SLUICE_EFULL for dropped, SLUICE_ECLOSED for
 * drain/destroy) and wait() returns. Such a hand-back happens inside the
 * pool's on_abandon, and when it is the group's first error it cancels
 * the group's context there: callbacks registered on that context (or
 * on its children) then run inside on_abandon and must keep its rule too
 * (sluice/pool.h: not block, not call that pool). Helped tasks leave
 * their (no-op) pool task queued until a worker gets to it; each holds a
 * reference on the group's memory, released when it runs or is handed
 * back.
 *
 * Example:
 *
 *     sluice_group_config gc;
 *     sluice_group_config_init(&gc);
 *     gc.name = "fetch";
 *     gc.pool = pool;        // or NULL and gc.threads = 8
 *     gc.limit = 8;          // at most 8 fetches in flight
 *     gc.parent = req_ctx;   // the request's deadline applies to all
 *     sluice_group *g;
 *     if (sluice_group_create(&gc, &g, errbuf, sizeof errbuf)) ...;
 *     for (size_t i = 0; i < n; i++)
 *         sluice_group_run(g, fetch_one, &jobs[i]);   // fetch_one reads sluice_group_ctx(g)
 *     sluice_group_result res;
 *     sluice_err err = sluice_group_wait(g, &res);
 *     if (err) log("fetch failed: %s (rc %d%s)", sluice_strerror(err), res.first_rc,
 *                  res.panicked ? ", panicked" : "");
 *     sluice_group_destroy(g);
 *
 * Lock order: group mutex only; never held while a task, a context
 * callback, or a pool call runs.
 */
#ifndef SLUICE_GROUP_H
#define SLUICE_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"

typedef struct sluice_group sluice_group;

#define SLUICE_GROUP_NAME_MAX 40
#define SLUICE_GROUP_MESSAGE_MAX 256

typedef struct sluice_group_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "group". Used as the
     * private pool's name and the metrics label. Tasks carry the static
     * label "group" (a task label must outlive every reader of the pool's
     * worker states, which a group that may be destroyed cannot promise). */
    const char *name;
    /* Most tasks in flight (queued or running) at once; 0 = no limit. */
    unsigned limit;
    /* Run on this pool (not owned; it must outlive the group). NULL: the
     * group starts a private pool of `threads` threads. */
    sluice_pool *pool;
    /* Threads of the private pool; 0 = limit, or 4 when limit is 0.
     * Ignored with cfg.pool. */
    unsigned threads;
    /* The group's context is a child of this one (retained); NULL: a root. */
    sluice_ctx *parent;
    /* Clock for the private pool and the group context; NULL = the pool's
     * clock (cfg.pool) or the system clock, except that with a parent and
     * no clock the group context takes the parent's clock (the private
     * pool still runs on the system clock). A clock given here must be
     * the parent's when the parent has a deadline (else SLUICE_EINVAL
     * naming parent). */
    const sluice_clock *clock;
} sluice_group_config;

SLUICE_API void sluice_group_config_init(sluice_group_config *cfg);

/*
 * sluice_group_create - a group, ready to run tasks.
 * Returns: SLUICE_OK; SLUICE_EINVAL with the field in errbuf ("name: ...",
 * "parent: its clock differs from ..."); SLUICE_ENOMEM; SLUICE_ESYS (the
 * private pool's threads).
 * Ownership: *out belongs to the caller; free with sluice_group_destroy.
 */
SLUICE_API sluice_err sluice_group_create(const sluice_group_config *cfg, sluice_group **out, char *errbuf,
                                          size_t errlen);

/*
 * sluice_group_destroy - wait for the group's tasks (as wait does, result
 * discarded), stop its private pool, and free it. NULL is a no-op.
 * Thread-safety: once; no other call on the group may run or start. Not
 * from inside one of the group's tasks.
 */
SLUICE_API void sluice_group_destroy(sluice_group *g);

/* sluice_group_ctx - the group's context (borrowed; lives as long as the
 * group). Cancelled by the first error, by sluice_group_cancel, by its
 * parent, and when wait() returns. Pass it to the tasks' blocking calls. */
SLUICE_API sluice_ctx *sluice_group_ctx(sluice_group *g);

/*
 * sluice_group_run - run fn(arg) in the group. Waits while `limit` tasks
 * are in flight (helping, when called from a task of the group's pool:
 * see above).
 * Returns:
 *   SLUICE_OK      accepted: it will run, or be skipped if the group's
 *                  context ends first; either way wait() accounts for it
 *   SLUICE_ECLOSED wait() has returned (a waited group takes no more tasks)
 *   SLUICE_EINVAL  g or fn is NULL
 *   SLUICE_EDEADLK from one of the group's own tasks at the limit when no
 *                  slot can ever free: nothing is pending and every other
 *                  task in flight is itself waiting in run() (for example
 *                  limit 1: the caller holds the only slot; or the caller
 *                  is a task that a run() waiting in the other task helps
 *                  with, inline on that task's thread). Not accepted;
 *                  the caller keeps arg (it may run fn(arg) itself)
 *   the pool's refusal (SLUICE_EFULL, SLUICE_ETIMEDOUT, SLUICE_EDEADLK,
 *   SLUICE_ECLOSED): not accepted, the caller keeps arg
 * Thread-safety: safe from any thread, including the group's own tasks
 * (a task may spawn subtasks into its group).
 */
SLUICE_API sluice_err sluice_group_run(sluice_group *g, sluice_task_fn fn, void *arg);

/* sluice_group_try_run - as run, but SLUICE_EAGAIN at once when `limit`
 * tasks are in flight. */
SLUICE_API sluice_err sluice_group_try_run(sluice_group *g, sluice_task_fn fn, void *arg);

/* What wait() reports about the first error. */
typedef struct sluice_group_result {
    sluice_err err;                         /* as returned */
    int first_rc;                           /* the failing task's return value; 0 if it panicked */
    bool panicked;                          /* the first error was a panic (or a recovered fault) */
    char message[SLUICE_GROUP_MESSAGE_MAX]; /* the panic's message; "" otherwise */
} sluice_group_result;

/*
 * sluice_group_wait - wait until every accepted task has finished or been
 * skipped, then cancel the group's context (as Go's errgroup does).
 * Returns: SLUICE_OK when every task succeeded; the first error (see the
 * mapping above); when no task failed but some were skipped because the
 * context ended (parent cancelled, sluice_group_cancel), the context's
 * cause; SLUICE_EDEADLK from inside one of the group's own tasks;
 * SLUICE_EINVAL for NULL. res (optional) gets the details.
 * Calling it again returns the same result at once.
 */
SLUICE_API sluice_err sluice_group_wait(sluice_group *g, sluice_group_result *res);

/* sluice_group_cancel - cancel the group's context with `cause` (OK ->
 * SLUICE_ECANCELED): not-yet-started tasks are skipped. */
SLUICE_API void sluice_group_cancel(sluice_group *g, sluice_err cause);

/*
 * sluice_group_abandoned - if `task` is one of a group's, account it as
 * failed (the group's first error becomes SLUICE_EFULL for DROPPED,
 * SLUICE_ETIMEDOUT for SHED, SLUICE_ECLOSED for DRAIN/DESTROY) and return
 * true; false for any other task. Groups call it themselves through their
 * tasks' on_abandon, so a pool's abandon handler never sees group tasks;
 * it stays for handlers written before that (a no-op for them now).
 * Thread-safety: safe from any thread.
 */
SLUICE_API bool sluice_group_abandoned(const sluice_abandoned *task);

typedef struct sluice_group_stats {
    /* gauges */
    unsigned limit;   /* 0 = none */
    unsigned pending; /* accepted, not started */
    unsigned running;
    bool waited;
    /* counters */
    uint64_t accepted;
    uint64_t completed; /* returned 0 */
    uint64_t failed;    /* returned non-zero, or handed back by the pool */
    uint64_t panicked;
    uint64_t skipped;     /* not run: the context ended first */
    uint64_t helped;      /* run inline by a waiting worker */
    uint64_t try_refused; /* try_run answered SLUICE_EAGAIN */
} sluice_group_stats;

SLUICE_API void sluice_group_stats_get(sluice_group *g, sluice_group_stats *out);
SLUICE_API const char *sluice_group_name(const sluice_group *g);

#endif /* SLUICE_GROUP_H */
