/*
 * src/sync/sync_internal.h - helpers shared by the files of src/sync.
 *
 * Timed waits. Every primitive that blocks waits on a condition variable
 * created with CLOCK_MONOTONIC (sluice__cond_init, src/base/timing.h) and
 * bounds each wait with sluice__wait_until() or sluice__wait_ctx(). With
 * the system clock that is one pthread_cond_timedwait to the deadline;
 * with any other clock (a fake clock in tests) the wait lasts at most
 * SLUICE_CLOCK_POLL_NS of real time, so callers always loop and re-check
 * their condition and the clock. Error messages go through sluice__errf
 * (src/base/errbuf.h); names and histogram bounds follow src/base/rules.h.
 */
#ifndef SLUICE_SYNC_INTERNAL_H
#define SLUICE_SYNC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/errbuf.h"
#include "base/rules.h"
#include "base/tb.h"
#include "base/timing.h"
#include "sluice/clock.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"

/* ---- util.c ----------------------------------------------------------- */

/*
 * sluice__sync_submit_now - submit fn(arg) with `opts` without waiting for
 * space in the pool's queue: as sluice_pool_try_submit (a full BLOCK or
 * REJECT pool gives SLUICE_EFULL; CALLER_RUNS runs it on this thread;
 * DROP_OLDEST evicts), but with the options. Used where a sync primitive
 * must not block on its pool (on one of the pool's own workers). Not a
 * past submit deadline: on a clock that reads 0, "1 ns" was still ahead,
 * and the submit waited until a test moved the clock.
 */
static inline sluice_err sluice__sync_submit_now(sluice_pool *pool, sluice_task_fn fn, void *arg,
                                                 const sluice_submit_opts *opts)
{
    sluice_task_spec one = {.fn = fn, .arg = arg, .opts = opts};
    size_t accepted = 0;
    return sluice_pool_submit_batch(pool, &one, 1, true, &accepted);
}

/*
 * sluice__sync_sleep_until - with `mu` held, sleep until `until_ns` on clk
 * or until ctx is done (a cancel wakes it at once through a ctx callback;
 * mu is released around registering and removing it). mu is held again on
 * return. Returns SLUICE_OK when until_ns came, else ctx's error
 * (SLUICE_ETIMEDOUT for its deadline). Does not call sluice_ctx_err (the
 * caller does, after dropping mu, to run callbacks of a passed deadline).
 */
sluice_err sluice__sync_sleep_until(pthread_mutex_t *mu, const sluice_clock *clk, uint64_t until_ns,
                                    sluice_ctx *ctx);

/*
 * Copy a primitive's name into dst (cap bytes incl. NUL), or `dflt` when
 * name is NULL. Names follow the rule of src/base/rules.h (1..cap-1
 * bytes of [A-Za-z0-9_.:-]), so they are safe as metric label values and
 * in logs.
 * Returns SLUICE_OK or SLUICE_EINVAL with "name: ..." in errbuf.
 */
sluice_err sluice__sync_name_copy(char *dst, size_t cap, const char *name, const char *dflt, char *errbuf,
                                  size_t errlen);

/* A histogram guarded by its owner's lock (not atomic). */
typedef struct sluice__sync_hist {
    size_t nbounds;
    double bounds[SLUICE_HIST_MAX_BUCKETS];
    uint64_t bounds_ns[SLUICE_HIST_MAX_BUCKETS];
    uint64_t counts[SLUICE_HIST_MAX_BUCKETS + 1];
    uint64_t count;
    uint64_t sum_ns;
} sluice__sync_hist;

/* Set the bounds (NULL/0: the pool default). SLUICE_EINVAL with
 * "<field>...: ..." in errbuf when they break the rule of src/base/rules.h
 * (sluice__hist_bounds_check). */
sluice_err sluice__sync_hist_init(sluice__sync_hist *h, const double *bounds, size_t n, const char *field,
                                  char *errbuf, size_t errlen);
void sluice__sync_hist_observe(sluice__sync_hist *h, uint64_t ns);
void sluice__sync_hist_snapshot(const sluice__sync_hist *h, sluice_histogram *out);

/* ---- token buckets: the bucket is src/base/tb.h; the check is limiter.c */

sluice_err sluice__limiter_check(double rate, uint64_t burst, char *errbuf, size_t errlen);

/* ---- adaptive.c ------------------------------------------------------- */

struct sluice_adaptive_config;

/*
 * sluice__adaptive_config_check - the rules sluice_adaptive_create applies
 * to cfg's limits and factors (not its name): the bad field's name, with
 * why[] saying why, or NULL. Pure. The pool controller's config check
 * (control.c) runs it too, so that it refuses exactly what create does.
 */
const char *sluice__adaptive_config_check(const struct sluice_adaptive_config *cfg, char *why, size_t whylen);

#endif /* SLUICE_SYNC_INTERNAL_H */
