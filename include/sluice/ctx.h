/*
 * sluice/ctx.h - contexts: a deadline and a cancellation flag, chained.
 *
 * A context is what a request carries to say "stop caring after T, or when
 * I say so". A child context is cancelled when its parent is, and its
 * deadline is never later than its parent's. Cancellation records a cause
 * (a sluice_err; SLUICE_ECANCELED by default, SLUICE_ETIMEDOUT once the
 * deadline passes) and runs the registered cancel callbacks once.
 *
 * Checking a context is cheap: sluice_ctx_err() is one relaxed atomic load
 * for "cancelled?" and, only when a deadline is set, one clock read.
 *
 * Deadlines are observed, not timed: there is no timer thread. The first
 * call that sees a deadline passed (sluice_ctx_err, _done, _wait,
 * _on_cancel, or a Sluice primitive waiting on the context) cancels it with
 * SLUICE_ETIMEDOUT and runs its callbacks on that thread. A child may not
 * use a different clock from a parent that has a deadline (SLUICE_EINVAL).
 *
 * Ownership: contexts are reference-counted. sluice_ctx_create() returns a
 * context holding one reference; sluice_ctx_retain/release add and drop
 * references; the last release frees it. A child holds a reference to its
 * parent. The pool retains a context for every queued task that carries it
 * and releases it when the task has run or been handed back.
 */
#ifndef SLUICE_CTX_H
#define SLUICE_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"

typedef struct sluice_ctx sluice_ctx;

/* Called once when the context is cancelled, with the cause. Runs on the
 * thread that cancels (or that first observes the deadline); it must not
 * block and must not release the last reference to the context. */
typedef void (*sluice_ctx_cancel_fn)(sluice_ctx *ctx, sluice_err cause, void *arg);

/*
 * sluice_ctx_create - a new context.
 *   parent:      NULL for a root, or a context to chain to (retained).
 *   deadline_ns: absolute time on `clock` after which the context is done;
 *                0 for none (the parent's deadline still applies).
 *   clock:       the clock deadlines are read from; NULL for the system
 *                clock. A child with NULL inherits its parent's clock.
 * Returns: SLUICE_OK, SLUICE_EINVAL (out NULL, or a parent with a
 * deadline on another clock than `clock`: the two cannot be compared),
 * SLUICE_ENOMEM. A deadline of UINT64_MAX never comes, also on a clock
 * that has reached UINT64_MAX.
 * Ownership: *out holds one reference; release it with sluice_ctx_release.
 * Thread-safety: safe; the parent may be cancelled concurrently (then the
 * child is born cancelled).
 */
SLUICE_API sluice_err sluice_ctx_create(sluice_ctx **out, sluice_ctx *parent, uint64_t deadline_ns,
                                        const sluice_clock *clock);

/* sluice_ctx_with_timeout - a child whose deadline is now + timeout_ns:
 * 0 gives a context that is already done (SLUICE_ETIMEDOUT); the sum
 * saturates, so UINT64_MAX is a deadline that never comes. */
SLUICE_API sluice_err sluice_ctx_with_timeout(sluice_ctx **out, sluice_ctx *parent, uint64_t timeout_ns,
                                              const sluice_clock *clock);

/* sluice_ctx_retain - add a reference. ctx must be live. Thread-safe. */
SLUICE_API void sluice_ctx_retain(sluice_ctx *ctx);

/* sluice_ctx_release - drop a reference; frees at zero. NULL is a no-op. */
SLUICE_API void sluice_ctx_release(sluice_ctx *ctx);

/*
 * sluice_ctx_cancel - cancel ctx and all its descendants with `cause`
 * (SLUICE_OK is turned into SLUICE_ECANCELED). Only the first cancel
 * counts; later calls are no-ops. Cancel callbacks run before it returns.
 * Thread-safety: safe from any thread, including from inside a callback of
 * another context. Deadlock hazard: callbacks run on the calling thread
 * with no Sluice lock held.
 */
SLUICE_API void sluice_ctx_cancel(sluice_ctx *ctx, sluice_err cause);

/*
 * sluice_ctx_err - SLUICE_OK while the context is live; the cause once it
 * is cancelled; SLUICE_ETIMEDOUT once its (or an ancestor's) deadline has
 * passed (observing the deadline cancels the context, running callbacks).
 * NULL is a live context that never ends.
 * Thread-safety: safe from any thread; cheap enough for a hot loop.
 */
SLUICE_API sluice_err sluice_ctx_err(sluice_ctx *ctx);

/* sluice_ctx_done - sluice_ctx_err(ctx) != SLUICE_OK. */
SLUICE_API bool sluice_ctx_done(sluice_ctx *ctx);

/* sluice_ctx_deadline - the effective deadline (earliest in the chain), 0 if none. */
SLUICE_API uint64_t sluice_ctx_deadline(const sluice_ctx *ctx);

/* sluice_ctx_clock - the clock the context's deadline is read from (never NULL). */
SLUICE_API const sluice_clock *sluice_ctx_clock(const sluice_ctx *ctx);

/*
 * sluice_ctx_on_cancel - register fn(ctx, cause, arg) to run once when ctx
 * is cancelled. If ctx is already cancelled, fn runs now, on this thread.
 *   id_out: optional; an id for sluice_ctx_remove_cancel.
 * Returns: SLUICE_OK, SLUICE_EINVAL, SLUICE_ENOMEM.
 */
SLUICE_API sluice_err sluice_ctx_on_cancel(sluice_ctx *ctx, sluice_ctx_cancel_fn fn, void *arg,
                                           uint64_t *id_out);

/*
 * sluice_ctx_remove_cancel - unregister a callback. Returns true if it was
 * removed before running; false if it already ran (or is running now).
 * When it is running now on another thread, the call waits for it to
 * return, so once this returns the callback is neither pending nor running
 * and its `arg` may be freed. Called from inside the callback itself it
 * returns false at once.
 * Deadlock hazard: do not call it while holding a lock that the callback
 * takes.
 */
SLUICE_API bool sluice_ctx_remove_cancel(sluice_ctx *ctx, uint64_t id);

/*
 * sluice_ctx_wait - block until ctx is done or `until_ns` (on the ctx's
 * clock; 0 = no limit) passes. Returns the ctx's error, or SLUICE_OK when
 * until_ns came first; SLUICE_EINVAL for a NULL ctx (it would never end).
 * With a fake clock it re-reads the clock every SLUICE_CLOCK_POLL_NS.
 */
SLUICE_API sluice_err sluice_ctx_wait(sluice_ctx *ctx, uint64_t until_ns);

#endif /* SLUICE_CTX_H */
