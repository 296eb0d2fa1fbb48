/*
 * src/sync/util.c - small helpers shared by the primitives of src/sync:
 * error messages, name validation, and a lock-guarded histogram.
 *
 * The histogram mirrors the pool's: finite upper bounds in seconds (the
 * pool default 0.0001 * 2^k, k = 0..16, unless configured), non-cumulative
 * counts with an overflow bucket, and a sum. It is not atomic: each
 * primitive updates it under its own mutex, where it already is on the
 * paths that observe (a semaphore grant, a limiter wait).
 *
 * Locks: none of its own.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sync/sync_internal.h"

static const double default_bounds[SLUICE_HIST_DEFAULT_BUCKETS] = {
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256,
    0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536,
};

void sluice__sync_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

sluice_err sluice__sync_name_copy(char *dst, size_t cap, const char *name, const char *dflt, char *errbuf,
                                  size_t errlen)
{
    if (!name) {
        name = dflt;
    }
    size_t len = strlen(name);
    if (len == 0 || len >= cap) {
        sluice__sync_errf(errbuf, errlen, "name: must be 1..%zu bytes, got %zu", cap - 1, len);
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == ':' || c == '-';
        if (!ok) {
            sluice__sync_errf(errbuf, errlen, "name: '%s' has a character outside [A-Za-z0-9_.:-] at %zu",
                              name, i);
            return SLUICE_EINVAL;
        }
    }
    memcpy(dst, name, len + 1);
    return SLUICE_OK;
}

sluice_err sluice__sync_hist_init(sluice__sync_hist *h, const double *bounds, size_t n, const char *field,
                                  char *errbuf, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (!bounds || n == 0) {
        bounds = default_bounds;
        n = SLUICE_HIST_DEFAULT_BUCKETS;
    }
    if (n > SLUICE_HIST_MAX_BUCKETS) {
        sluice__sync_errf(errbuf, errlen, "%s: at most %d buckets, got %zu", field, SLUICE_HIST_MAX_BUCKETS,
                          n);
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || bounds[i] <= 0 || (i > 0 && bounds[i] <= bounds[i - 1])) {
            sluice__sync_errf(errbuf, errlen,
                              "%s: bounds must be finite, > 0 and strictly increasing (index %zu)", field, i);
            return SLUICE_EINVAL;
        }
        h->bounds[i] = bounds[i];
        double ns = bounds[i] * 1e9;
        h->bounds_ns[i] = ns >= 1.8e19 ? UINT64_MAX : (uint64_t)ns;
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
    if (sluice__sync_cond_init(&s.cv) != 0) {
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
        if (sluice__sync_timed_out(clk, 0, ctx)) {
            err = SLUICE_ETIMEDOUT;
            break;
        }
        sluice__sync_wait_ctx(clk, until_ns, ctx, registered, &s.cv, mu);
    }
    if (registered) {
        pthread_mutex_unlock(mu);
        sluice_ctx_remove_cancel(ctx, id); /* waits for a sleeper_wake in flight */
        pthread_mutex_lock(mu);
    }
    pthread_cond_destroy(&s.cv);
    return err;
}
