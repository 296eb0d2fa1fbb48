/*
 * src/sync/util.c - small helpers shared by the primitives of src/sync:
 * name copies, a lock-guarded histogram, and sleeping until a time or a
 * context's end. (The rules themselves, for names and bounds, are
 * src/base/rules.h.)
 *
 * The histogram mirrors the pool's: finite upper bounds in seconds (the
 * pool default 0.0001 * 2^k, k = 0..16, unless configured), non-cumulative
 * counts with an overflow bucket, and a sum. It is not atomic: each
 * primitive updates it under its own mutex, where it already is on the
 * paths that observe (a semaphore grant, a limiter wait).
 *
 * Locks: none of its own.
 */
#include <string.h>

#include "sync/sync_internal.h"

sluice_err sluice__sync_name_copy(char *dst, size_t cap, const char *name, const char *dflt, char *errbuf,
                                  size_t errlen)
{
    if (!name) {
        name = dflt;
    }
    sluice_err err = sluice__name_check(name, cap - 1, "name", errbuf, errlen);
    if (err) {
        return err;
    }
    memcpy(dst, name, strlen(name) + 1);
    return SLUICE_OK;
}

sluice_err sluice__sync_hist_init(sluice__sync_hist *h, const double *bounds, size_t n, const char *field,
                                  char *errbuf, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (!bounds || n == 0) {
        bounds = sluice__hist_default_bounds();
        n = SLUICE_HIST_DEFAULT_BUCKETS;
    }
    sluice_err err = sluice__hist_bounds_check(bounds, n, field, errbuf, errlen);
    if (err) {
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        h->bounds[i] = bounds[i];
        h->bounds_ns[i] = (uint64_t)(bounds[i] * 1e9); /* <= 1e18: the rule caps bounds at 1e9 s */
    }
    h->nbounds = n;
    return SLUICE_OK;
}

void sluice__sync_hist_observe(sluice__sync_hist *h, uint64_t ns)
{
    size_t lo = 0, hi = h->nbounds; /* first bound >= ns, by bisection */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bounds_ns[mid] >= ns) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    h->counts[lo]++;
    h->count++;
    h->sum_ns += ns;
}

void sluice__sync_hist_snapshot(const sluice__sync_hist *h, sluice_histogram *out)
{
    memset(out, 0, sizeof *out);
    out->bucket_count = h->nbounds;
    memcpy(out->bounds, h->bounds, h->nbounds * sizeof h->bounds[0]);
    memcpy(out->counts, h->counts, (h->nbounds + 1) * sizeof h->counts[0]);
    out->count = h->count;
    out->sum_seconds = (double)h->sum_ns / 1e9;
}

/* ---- sleeping until a time or a context's end ------------------------------ */

typedef struct sleeper {
    pthread_mutex_t *mu;
    pthread_cond_t cv;
} sleeper;

static void sleeper_wake(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    (void)cause;
    sleeper *s = arg;
    pthread_mutex_lock(s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(s->mu);
}

sluice_err sluice__sync_sleep_until(pthread_mutex_t *mu, const sluice_clock *clk, uint64_t until_ns,
                                    sluice_ctx *ctx)
{
    sleeper s = {.mu = mu};
    if (sluice__cond_init(&s.cv) != 0) {
        return SLUICE_ENOMEM;
    }
    uint64_t id = 0;
    bool registered = false;
    if (ctx) {
        pthread_mutex_unlock(mu);
        registered = sluice_ctx_on_cancel(ctx, sleeper_wake, &s, &id) == SLUICE_OK;
        pthread_mutex_lock(mu);
    }
    sluice_err err;
    for (;;) {
        if ((err = sluice__ctx_peek(ctx)) != SLUICE_OK) {
            break;
        }
        if (sluice_clock_now(clk) >= until_ns) {
            break;
        }
        if (sluice__timed_out(clk, 0, ctx)) {
            err = SLUICE_ETIMEDOUT;
            break;
        }
        sluice__wait_ctx(clk, until_ns, ctx, registered, &s.cv, mu);
    }
    if (registered) {
        pthread_mutex_unlock(mu);
        sluice_ctx_remove_cancel(ctx, id); /* waits for a sleeper_wake in flight */
        pthread_mutex_lock(mu);
    }
    pthread_cond_destroy(&s.cv);
    return err;
}
