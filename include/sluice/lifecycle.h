/*
 * sluice/lifecycle.h - SIGTERM/SIGINT/SIGHUP handling and the drain
 * sequence of a service built on Sluice pools.
 *
 * The sequence on the first SIGTERM or SIGINT (or sluice_lifecycle_shutdown):
 *
 *   1. set_ready(false): /health/ready turns 503, the load balancer stops
 *      sending new work;
 *   2. wait the grace period (shutdown_grace), so that it notices;
 *   3. stop_producers(): the service stops its sources (consumers, accept
 *      loops); submits already blocked are released by step 4;
 *   4. drain every registered pool at once, each within
 *      min(its drain timeout, the total drain budget), both counted from
 *      the start of this step; what was still queued at the deadline goes
 *      to each pool's abandon handler (the service persists or retries
 *      it). A pool whose drain thread cannot be started (thread limits) is
 *      drained on the waiting thread after the others have started, with
 *      what is left until its deadline: the budget holds either way;
 *   5. report: one line per pool and a total, through the log callback,
 *      and the same figures in sluice_lifecycle_report.
 *
 * A second SIGTERM/SIGINT while this runs means "stop now": the helper logs
 * "second signal: exiting at once without finishing the drain" and calls
 * on_force_exit, whose default is _exit(force_exit_code). This is the one
 * place Sluice ends a process, because that is what the operator asked.
 *
 * SIGHUP calls reload() on the lifecycle's reload thread (one at a time).
 *
 * Part of libsluice (src/service): no YAML or HTTP is needed for
 * drain-on-SIGTERM. Most services use it through sluice/service.h, which
 * owns the pools and registers each one here once.
 *
 * Signals are taken by a dedicated thread with sigwait(), never in a
 * handler: call sluice_lifecycle_block_signals() in main() before any
 * thread is created (threads inherit the mask), then
 * sluice_lifecycle_start(). A thread created before the signals were
 * blocked may receive SIGTERM itself and die with the default action.
 *
 * Callbacks run with no lifecycle lock held, so they may call any
 * lifecycle or pool function. reload() runs on its own thread, one call at
 * a time (SIGHUPs that arrive during a reload are coalesced into one more
 * call), possibly while the shutdown sequence runs: a resize of a draining
 * pool then fails with SLUICE_ECLOSED. Deadlock hazards: sluice_lifecycle_destroy
 * waits for a reload in progress. set_ready() and stop_producers() run on
 * the thread in sluice_lifecycle_wait(); stop_producers() must not wait
 * for a producer that is blocked in a submit to a full BLOCK pool (the
 * drain, which comes after it, is what releases that submit with
 * SLUICE_ECLOSED): set a flag and return.
 */
#ifndef SLUICE_LIFECYCLE_H
#define SLUICE_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_lifecycle sluice_lifecycle;

/* The most pools one lifecycle drains (the report is kept inline). */
#define SLUICE_LIFECYCLE_MAX_POOLS 32

typedef struct sluice_lifecycle_config {
    /* Time between not-ready and stopping the producers. 0 = none. */
    uint64_t shutdown_grace_ns;
    /* Total time for draining all pools; 0 = no limit. */
    uint64_t drain_budget_ns;
    /* Step 1: readiness. NULL = nothing to flip. */
    void (*set_ready)(void *user, bool ready);
    /* Step 3: stop the sources of work. NULL = none. Runs on the thread
     * that called sluice_lifecycle_wait. */
    void (*stop_producers)(void *user);
    /* SIGHUP. NULL = SIGHUP is logged and ignored. Runs on the lifecycle's
     * reload thread, never concurrently with itself. */
    void (*reload)(void *user);
    /* Log lines (no trailing newline). NULL = stderr with "sluice: ". */
    void (*log)(void *user, const char *line);
    /* Second signal during shutdown. NULL = write a line to stderr and
     * _exit(force_exit_code). A test may set it to record instead; the
     * drain then goes on. */
    void (*on_force_exit)(void *user, int signo);
    void *user;
    /* Exit status for the forced exit; 0 = 130 (128 + SIGINT's 2). */
    int force_exit_code;
    /* Do not take signals at all (tests that drive the sequence with
     * sluice_lifecycle_shutdown only). */
    bool no_signals;
    /* The clock the grace period is measured on; NULL = system. */
    const sluice_clock *clock;
} sluice_lifecycle_config;

/* What the drain did to one pool. */
typedef struct sluice_lifecycle_pool_report {
    const char *name; /* the pool's name (valid while the pool lives) */
    sluice_err err;   /* sluice_pool_drain's result */
    sluice_drain_report drain;
} sluice_lifecycle_pool_report;

typedef struct sluice_lifecycle_report {
    int signo;              /* the signal that started it; 0 = sluice_lifecycle_shutdown */
    bool timed_out;         /* some pool missed its deadline */
    uint64_t elapsed_ns;    /* from the signal to the end of the drain */
    uint64_t handed_back;   /* queued tasks handed back, all pools */
    uint64_t still_running; /* tasks running at the deadline, all pools */
    size_t pool_count;
    sluice_lifecycle_pool_report pools[SLUICE_LIFECYCLE_MAX_POOLS];
} sluice_lifecycle_report;

/*
 * sluice_lifecycle_block_signals - block SIGTERM, SIGINT and SIGHUP in the
 * calling thread (call it in main() before creating any thread).
 * Returns SLUICE_OK or SLUICE_ESYS.
 */
SLUICE_API sluice_err sluice_lifecycle_block_signals(void);

/*
 * sluice_lifecycle_start - start the signal thread (unless cfg->no_signals).
 * Returns: SLUICE_OK; SLUICE_EINVAL (cfg or out NULL); SLUICE_ENOMEM;
 * SLUICE_ESYS (thread creation failed).
 * Ownership: *out belongs to the caller (sluice_lifecycle_destroy). cfg is
 * copied.
 */
SLUICE_API sluice_err sluice_lifecycle_start(const sluice_lifecycle_config *cfg, sluice_lifecycle **out);

/*
 * sluice_lifecycle_add_pool - drain `pool` at shutdown within drain_timeout_ns
 * (0 = the budget). The pool is borrowed: it must live until
 * sluice_lifecycle_wait returns; the lifecycle never destroys it.
 * Returns SLUICE_OK, SLUICE_EINVAL, SLUICE_EOVERFLOW (more than
 * SLUICE_LIFECYCLE_MAX_POOLS), SLUICE_EBUSY (shutdown already began).
 * Thread-safe.
 */
SLUICE_API sluice_err sluice_lifecycle_add_pool(sluice_lifecycle *lc, sluice_pool *pool,
                                                uint64_t drain_timeout_ns);

/*
 * sluice_lifecycle_set_pool_timeout - change the drain timeout of a pool
 * already added (after a reload); 0 = the budget. A drain already begun
 * keeps the timeout it started with.
 * Returns SLUICE_OK, SLUICE_EINVAL (NULL), SLUICE_ENOENT (not added).
 * Thread-safe.
 */
SLUICE_API sluice_err sluice_lifecycle_set_pool_timeout(sluice_lifecycle *lc, const sluice_pool *pool,
                                                        uint64_t drain_timeout_ns);

/* sluice_lifecycle_set_budget - change grace and budget (after a reload);
 * 0 = no grace / no limit. Thread-safe; a sequence already begun keeps the
 * values it read when it began. NULL is a no-op. */
SLUICE_API void sluice_lifecycle_set_budget(sluice_lifecycle *lc, uint64_t shutdown_grace_ns,
                                            uint64_t drain_budget_ns);

/*
 * sluice_lifecycle_shutdown - begin the sequence as if SIGTERM had come
 * (for example when a --duration ends). Idempotent. Thread-safe, also from
 * inside a callback.
 */
SLUICE_API void sluice_lifecycle_shutdown(sluice_lifecycle *lc);

/* sluice_lifecycle_stopping - true once the sequence has begun. */
SLUICE_API bool sluice_lifecycle_stopping(const sluice_lifecycle *lc);

/*
 * sluice_lifecycle_wait - block until a shutdown begins, then run steps
 * 1-5 on this thread and fill *report (optional).
 * Returns: SLUICE_OK when every pool drained in time; SLUICE_ETIMEDOUT when
 * some pool missed its deadline (see report); SLUICE_EBUSY when called
 * twice.
 * Thread-safety: call from one thread (usually main).
 */
SLUICE_API sluice_err sluice_lifecycle_wait(sluice_lifecycle *lc, sluice_lifecycle_report *report);

/*
 * sluice_lifecycle_destroy - stop the signal thread and free. The signals
 * stay blocked in the calling thread. NULL is a no-op. Call after
 * sluice_lifecycle_wait has returned (or when it was never called).
 */
SLUICE_API void sluice_lifecycle_destroy(sluice_lifecycle *lc);

#endif /* SLUICE_LIFECYCLE_H */
