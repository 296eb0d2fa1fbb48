/*
 * sluice/retry.h - retries with exponential backoff, jitter, a per-call
 * attempt limit and deadline, and a retry budget shared by many callers.
 *
 * The reference chain (client -> LB -> handler -> pool -> downstream) has
 * "timeout, retry (with backoff, jitter)" at two layers, and retries are
 * what turns a downstream's bad minute into an outage: every caller that
 * retries three times triples the load on the thing that is already
 * failing. So a retrier here always has three brakes:
 *
 *   - a per-call limit: at most max_attempts attempts (the first included),
 *     and never past the call's deadline (the context's, or call_timeout_ns
 *     after the call began): a backoff that would end past the deadline is
 *     not slept, the call gives up at once with SLUICE_ETIMEDOUT;
 *   - backoff with jitter (Marc Brooker, "Exponential Backoff And Jitter",
 *     AWS Architecture Blog, 2015): FULL jitter sleeps a uniform time in
 *     [0, min(max, base * multiplier^(n-1))) before retry n; DECORRELATED
 *     sleeps min(max, uniform in [base, 3 * previous sleep)); EQUAL keeps
 *     half of the exponential step and jitters the other half; NONE is the
 *     plain exponential step. Full jitter is the default: the blog's
 *     simulation found it does the least total work for contending
 *     clients, decorrelated a close second with shorter tails;
 *   - an optional shared retry budget (sluice_retry_budget, below): retries
 *     at most `ratio` of the first attempts seen over a sliding window,
 *     plus a small floor per second, as Finagle's RetryBudget and gRPC's
 *     retry throttling do, so that under a downstream failing 100% the
 *     load it sees is at most (1 + ratio) times the offered load rather
 *     than max_attempts times.
 *
 * Two ways to run a call:
 *
 *   sluice_retry_call      on the calling thread: attempt, back off (an
 *                          interruptible sleep that the context's cancel
 *                          ends at once), attempt again. For a handler
 *                          thread that waits for the answer anyway.
 *   sluice_retry_submit    on the retrier's pool: each attempt is one pool
 *                          task; after a retryable failure the retry is
 *                          SCHEDULED (the retrier's timer thread submits it
 *                          again when the backoff ends), so no worker ever
 *                          sleeps through a backoff. A done callback gets
 *                          the final result, exactly once per accepted call.
 *
 * Results. An attempt is `int fn(void *arg)`: 0 is success, anything else
 * is a failure that the retryable predicate classifies (NULL predicate:
 * every failure is retryable). A panic in an attempt (sluice_panic, or a
 * recovered fault) is never retried: it is a bug, not a transient error.
 *
 * Example (the payment gateway call of the checkout story: 10 s per
 * attempt budget inside the handler's 25 s deadline, one retry):
 *
 *     sluice_retry_budget_config bc;
 *     sluice_retry_budget_config_init(&bc);     // 10% of first attempts, 10/s floor, 10 s window
 *     bc.name = "payments";
 *     sluice_retry_budget *budget;
 *     sluice_retry_budget_create(&bc, &budget, errbuf, sizeof errbuf);
 *
 *     sluice_retry_config rc;
 *     sluice_retry_config_init(&rc);
 *     rc.name = "payment-gateway";
 *     rc.max_attempts = 2;                        // the first and one retry
 *     rc.backoff.base_ns = 200 * SLUICE_NS_PER_MS;
 *     rc.retryable = gateway_retryable;           // 5xx and timeouts, not 4xx
 *     rc.budget = budget;                         // shared by every handler
 *     sluice_retry *gateway;
 *     sluice_retry_create(&rc, &gateway, errbuf, sizeof errbuf);
 *
 *     sluice_retry_result res;
 *     sluice_err err = sluice_retry_call(gateway, req_ctx, charge, &payment, &res);
 *     if (err) reply_503(res.outcome);            // budget, deadline, not retryable ...
 *
 * Thread-safety: every call is safe from any thread. Lock order: the
 * retrier's mutex -> the budget's mutex; neither is held while an attempt,
 * a predicate, a done callback or a pool call runs.
 */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"

#define SLUICE_RETRY_NAME_MAX 48
/* The most attempts a call may make (max_attempts). */
#define SLUICE_RETRY_MAX_ATTEMPTS 1000u

/* ---- the retry budget ---------------------------------------------------------- */

typedef struct sluice_retry_budget sluice_retry_budget;

typedef struct sluice_retry_budget_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "retry_budget". */
    const char *name;
    /* Retries allowed per first attempt over the window: 0.1 lets retries
     * add at most 10% to the load. config_init sets 0.1. 0 allows only the
     * floor below; at most 1000. Must be finite. */
    double ratio;
    /* Retries always allowed per second, whatever the ratio, so a service
     * with little traffic can still retry: the window allows
     * min_per_sec * window seconds of them. config_init sets 10. 0 = none;
     * at most 1e6. */
    double min_per_sec;
    /* The sliding window; 0 = 10 s; at least 10 ms, at most 1 hour. It is
     * kept as 10 slots of window/10: counts leave the window a slot at a
     * time. */
    uint64_t window_ns;
    const sluice_clock *clock; /* NULL = system */
} sluice_retry_budget_config;

/* sluice_retry_budget_config_init - zero cfg, then ratio 0.1, min 10/s. */
SLUICE_API void sluice_retry_budget_config_init(sluice_retry_budget_config *cfg);

/*
 * sluice_retry_budget_create - an empty budget (the floor is available at
 * once; ratio credit accrues with first attempts).
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf ("ratio:
 * must be finite and in [0, 1000], got -1"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; it must outlive every retrier
 * that uses it; free with sluice_retry_budget_destroy.
 */
SLUICE_API sluice_err sluice_retry_budget_create(const sluice_retry_budget_config *cfg,
                                                 sluice_retry_budget **out, char *errbuf, size_t errlen);

/* sluice_retry_budget_destroy - free it. NULL is a no-op. No call may be
 * in progress and no retrier may still use it. */
SLUICE_API void sluice_retry_budget_destroy(sluice_retry_budget *b);

/*
 * sluice_retry_budget_deposit - note one first attempt (retriers call it
 * for each call they start; call it yourself when you retry by hand).
 * Never blocks (one short mutex hold). Thread-safe.
 */
SLUICE_API void sluice_retry_budget_deposit(sluice_retry_budget *b);

/*
 * sluice_retry_budget_withdraw - ask for one retry. Grants it (true) when,
 * counting it, the retries in the window stay within
 *     ratio * first_attempts_in_window + min_per_sec * window_seconds;
 * else refuses (false) and counts `exhausted`. The window is the current
 * slot and the 9 before it, so the bound holds over every such window.
 * Never blocks. Thread-safe.
 */
SLUICE_API bool sluice_retry_budget_withdraw(sluice_retry_budget *b);

typedef struct sluice_retry_budget_stats {
    /* gauges, over the current window */
    uint64_t window_first_attempts;
    uint64_t window_retries;
    double balance; /* retries the window would still grant now (>= 0) */
    /* counters since create */
    uint64_t first_attempts; /* deposits */
    uint64_t retries;        /* withdrawals granted */
    uint64_t exhausted;      /* withdrawals refused */
    /* configuration */
    double ratio;
    double min_per_sec;
    uint64_t window_ns;
} sluice_retry_budget_stats;

SLUICE_API void sluice_retry_budget_stats_get(sluice_retry_budget *b, sluice_retry_budget_stats *out);
SLUICE_API const char *sluice_retry_budget_name(const sluice_retry_budget *b);

/* ---- backoff -------------------------------------------------------------------- */

/* Which jitter (see the top of this file). */
#define SLUICE_JITTER_MAP(XX)                                                                                \
    XX(FULL, "full")                                                                                         \
    XX(DECORRELATED, "decorrelated")                                                                         \
    XX(EQUAL, "equal")                                                                                       \
    XX(NONE, "none")

typedef enum sluice_jitter {
#define SLUICE_JITTER_ENUM_(id, name) SLUICE_JITTER_##id,
    SLUICE_JITTER_MAP(SLUICE_JITTER_ENUM_)
#undef SLUICE_JITTER_ENUM_
        SLUICE_JITTER_COUNT_ /* not a jitter; keep last */
} sluice_jitter;

/* "full", "decorrelated", ...; "unknown" when out of range. Static. */
SLUICE_API const char *sluice_jitter_name(sluice_jitter jitter);

typedef struct sluice_backoff {
    /* The first step; 0 = 100 ms. At most max_ns. */
    uint64_t base_ns;
    /* No sleep is longer; 0 = 10 s. */
    uint64_t max_ns;
    /* Growth per retry for FULL, EQUAL and NONE; 0 = 2; >= 1 and at most
     * 16. DECORRELATED always uses 3 (its definition). */
    double multiplier;
    sluice_jitter jitter; /* 0 = FULL */
} sluice_backoff;

/*
 * sluice_backoff_next - the sleep before retry number `retry` (1 for the
 * first retry, after the first attempt failed), given the previous sleep
 * (`prev_ns`, used only by DECORRELATED; 0 before the first retry), with
 * random numbers from *rng (a splitmix64 state the caller seeds: the same
 * seed gives the same sleeps). Zero fields of b take their defaults.
 * Returns: the sleep in ns, always <= the effective max_ns. Pure apart
 * from *rng; thread-safe for distinct rng states.
 */
SLUICE_API uint64_t sluice_backoff_next(const sluice_backoff *b, unsigned retry, uint64_t prev_ns,
                                        uint64_t *rng);

/* ---- the retrier ---------------------------------------------------------------- */

typedef struct sluice_retry sluice_retry;

/* How a call ended. */
#define SLUICE_RETRY_OUTCOME_MAP(XX)                                                                         \
    XX(SUCCESS, "success")             /* an attempt returned 0 */                                           \
    XX(NOT_RETRYABLE, "not_retryable") /* the predicate said no */                                           \
    XX(EXHAUSTED, "exhausted")         /* max_attempts made, all failed */                                   \
    XX(BUDGET, "budget")               /* the retry budget refused a retry */                                \
    XX(DEADLINE, "deadline")           /* the deadline passed, or would before the next attempt */           \
    XX(CANCELED, "canceled")           /* the context was cancelled */                                       \
    XX(PANICKED, "panicked")           /* an attempt panicked (never retried) */                             \
    XX(REFUSED, "refused")             /* the pool refused or handed back a retry, or the retrier closed */

typedef enum sluice_retry_outcome {
#define SLUICE_RETRY_OUTCOME_ENUM_(id, name) SLUICE_RETRY_##id,
    SLUICE_RETRY_OUTCOME_MAP(SLUICE_RETRY_OUTCOME_ENUM_)
#undef SLUICE_RETRY_OUTCOME_ENUM_
        SLUICE_RETRY_OUTCOME_COUNT_ /* not an outcome; keep last */
} sluice_retry_outcome;

/* "success", "budget", ...; "unknown" when out of range. Static. */
SLUICE_API const char *sluice_retry_outcome_name(sluice_retry_outcome outcome);

/* The final result of one call. */
typedef struct sluice_retry_result {
    /* SLUICE_OK for SUCCESS; SLUICE_ETASK for NOT_RETRYABLE, EXHAUSTED,
     * BUDGET and PANICKED; SLUICE_ETIMEDOUT for DEADLINE; the context's
     * cause for CANCELED; for REFUSED the pool's refusal (SLUICE_EFULL,
     * SLUICE_ETIMEDOUT, SLUICE_ECLOSED, ...) or SLUICE_ECLOSED when the
     * retrier was destroyed with the retry still waiting. */
    sluice_err err;
    sluice_retry_outcome outcome;
    int last_rc;         /* the last attempt's return value (0 if none ran or it panicked) */
    unsigned attempts;   /* attempts that ran */
    uint64_t elapsed_ns; /* from the call's start to its end, on the retrier's clock */
} sluice_retry_result;

/* Called once per accepted sluice_retry_submit call with its final result,
 * on the thread that ended it (a worker, the retrier's timer thread, or
 * the thread destroying the retrier), with no lock held. A call whose
 * attempt the pool hands back (dropped, shed, drain deadline, destroy)
 * ends on the timer thread, never inside the pool's on_abandon, so
 * pool.h's rule for that callback (must not block or call the pool) is
 * not done's; only if the timer cannot take it (no memory, or its thread
 * cannot start) does done run there, on the thread that handed the
 * attempt back. It should not block for long (it holds the timer thread,
 * and with it the retrier's other retries) and must not destroy the
 * retrier. */
typedef void (*sluice_retry_done_fn)(const sluice_retry_result *res, void *arg);

typedef struct sluice_retry_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "retry". The metrics label
     * and the timer thread's name. (Attempt tasks are labelled "retry": a
     * static string, since the pool may read a task's label after the call
     * has ended, when a panic is reported.) */
    const char *name;
    /* Attempts per call, the first included; 0 = 3; 1 = never retry; at
     * most SLUICE_RETRY_MAX_ATTEMPTS. */
    unsigned max_attempts;
    sluice_backoff backoff;
    /* Each call's deadline is at most this long after it starts; 0 = none
     * (a context's deadline still applies); at most 1 year. */
    uint64_t call_timeout_ns;
    /* Is a failed attempt's return value worth retrying? NULL: every
     * non-zero value is. Called on the attempt's thread, no lock held. */
    bool (*retryable)(int rc, void *user);
    void *user;
    /* Optional shared budget (borrowed; it must outlive the retrier). */
    sluice_retry_budget *budget;
    /* The pool sluice_retry_submit runs attempts on (borrowed; it must
     * outlive the retrier's last call). NULL: submit is refused. Its clock
     * must be the retrier's. */
    sluice_pool *pool;
    /* The clock for backoffs and deadlines; NULL = the pool's clock, or
     * the system clock without a pool. */
    const sluice_clock *clock;
    /* Seed of the jitter's random numbers; 0 = one drawn from the clock
     * and the retrier's address. Fix it for reproducible tests. */
    uint64_t seed;
} sluice_retry_config;

/* sluice_retry_config_init - zero cfg (every zero field is its default). */
SLUICE_API void sluice_retry_config_init(sluice_retry_config *cfg);

/*
 * sluice_retry_create - a retrier.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf
 * ("max_attempts: must be <= 1000, got 5000", "backoff.base_ns: must be
 * <= backoff.max_ns", "clock: differs from the pool's clock");
 * SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_retry_destroy.
 */
SLUICE_API sluice_err sluice_retry_create(const sluice_retry_config *cfg, sluice_retry **out, char *errbuf,
                                          size_t errlen);

/*
 * sluice_retry_destroy - end the retrier. Retries still waiting for their
 * backoff end at once: their done callbacks run on this thread with
 * outcome REFUSED and SLUICE_ECLOSED. Attempts queued or running on the
 * pool are waited for (each then ends its call without retrying), so
 * drain or destroy the pool first when its workers may not get to them.
 * NULL is a no-op.
 * Thread-safety: once, with no sluice_retry_call in progress and no new
 * call starting. Deadlock hazard: not from a done callback or an attempt of
 * this retrier (it would wait for itself).
 */
SLUICE_API void sluice_retry_destroy(sluice_retry *r);

/*
 * sluice_retry_call - run fn(arg) on this thread until it succeeds or the
 * retrier stops it (see the outcomes), sleeping the backoff between
 * attempts. ctx (optional) bounds the whole call: its cancel ends a sleep
 * at once, its deadline caps the call, and no attempt starts once it is
 * done. res (optional) gets the details.
 * Returns: res->err (see sluice_retry_result); SLUICE_EINVAL for a NULL r
 * or fn (no attempt runs).
 * Thread-safety: safe from any thread, concurrently. From a pool task it
 * works but holds the worker through the backoffs: use submit there.
 * A panic in fn propagates (this thread has no pool to catch it).
 */
SLUICE_API sluice_err sluice_retry_call(sluice_retry *r, sluice_ctx *ctx, sluice_task_fn fn, void *arg,
                                        sluice_retry_result *res);

/*
 * sluice_retry_submit - run fn(arg) as attempts on the retrier's pool,
 * resubmitting after each retryable failure once its backoff has passed
 * (the retrier's timer thread submits it, without ever waiting, on any
 * clock reading, 0 included: a full queue ends the call with REFUSED /
 * SLUICE_EFULL under BLOCK and REJECT, DROP_OLDEST evicts the oldest
 * queued task for it, and CALLER_RUNS runs the attempt on the timer
 * thread). Each attempt is
 * submitted with the call's deadline and ctx, so the pool sheds it if
 * they pass while it is queued; its task label is "retry".
 * done(res, arg) runs exactly once per accepted call. A context that
 * ends during a backoff ends the call when that backoff does, without
 * another attempt (outcome CANCELED or DEADLINE).
 * Returns:
 *   SLUICE_OK      accepted: done will run (it may already have, when
 *                  the pool ran the first attempt on this thread)
 *   SLUICE_EINVAL  r, fn or done NULL, or the retrier has no pool
 *   SLUICE_ECLOSED the retrier is being destroyed
 *   SLUICE_ENOMEM
 *   the context's error when ctx is already done (nothing runs)
 *   the pool's refusal of the first attempt (SLUICE_EFULL, ...): not
 *   accepted, done will not run, the caller keeps arg
 * Ownership: arg stays the caller's; it must live until done runs.
 * Thread-safety: safe from any thread, including pool workers.
 */
SLUICE_API sluice_err sluice_retry_submit(sluice_retry *r, sluice_ctx *ctx, sluice_task_fn fn, void *arg,
                                          sluice_retry_done_fn done);

/* sluice_retry_attempt - inside an attempt run by a retrier: its number
 * (1 for the first, 2 for the first retry, ...); 0 elsewhere. Useful for
 * logging, or to send an idempotency key only on retries. */
SLUICE_API unsigned sluice_retry_attempt(void);

typedef struct sluice_retry_stats {
    /* gauges */
    uint64_t in_flight; /* calls started and not yet ended */
    uint64_t waiting;   /* calls waiting out a backoff now (sleeping, or scheduled) */
    /* counters since create */
    uint64_t calls;                                 /* calls started (accepted) */
    uint64_t attempts;                              /* attempts run, first attempts included */
    uint64_t retries;                               /* attempts after the first */
    uint64_t budget_exhausted;                      /* retries the budget refused (= outcome BUDGET) */
    uint64_t outcomes[SLUICE_RETRY_OUTCOME_COUNT_]; /* ended calls by outcome */
} sluice_retry_stats;

/* sluice_retry_stats_get - a snapshot; exact when no call is in flight.
 * Thread-safe. */
SLUICE_API void sluice_retry_stats_get(sluice_retry *r, sluice_retry_stats *out);
SLUICE_API const char *sluice_retry_name(const sluice_retry *r);

#endif /* SLUICE_RETRY_H */
