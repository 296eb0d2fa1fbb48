/*
 * src/sync/limiter.c - the token bucket and the single-bucket limiter.
 *
 * Purpose. Admit work at a sustained rate with a bounded burst, in front
 * of a pool or a downstream (see sluice/limiter.h for the model, which is
 * Go's golang.org/x/time/rate).
 *
 * Design. A bucket is two numbers: `tokens` (a double, so fractional
 * refill is not lost between calls) and `last_ns`, the time they were
 * brought up to date. Every operation first advances the bucket to "now"
 * (tokens += elapsed * rate, capped at burst), so no timer is needed. A
 * reservation subtracts its tokens at once, possibly below zero (debt);
 * the time to act is when the refill pays the debt back. wait() is a
 * reservation plus a sleep, cancelled (tokens returned) if the context
 * ends first. A clock that steps backwards (a fake clock set by a test)
 * adds nothing and does not move last_ns back.
 *
 * The bucket itself (sluice__tb_*) is header-only in src/base/tb.h,
 * shared with the keyed limiter (keyed_limiter.c) and the distributed
 * limiter's fallback (src/cluster/dlimiter.c, a separate library that
 * cannot call hidden functions of libsluice); this file keeps the rate
 * and burst check and the limiter around one bucket.
 *
 * Lock order: one mutex per limiter; released while registering or
 * removing a context callback (sluice__sync_sleep_until).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/limiter.h"
#include "sync/sync_internal.h"

/* ---- the rate and burst check ---------------------------------------------------- */

sluice_err sluice__limiter_check(double rate, uint64_t burst, char *errbuf, size_t errlen)
{
    if (isnan(rate) || rate < 0) {
        sluice__errf(errbuf, errlen, "rate: must be >= 0 (or SLUICE_RATE_INF), got %g", rate);
        return SLUICE_EINVAL;
    }
    if (burst == 0 && !isinf(rate)) {
        sluice__errf(errbuf, errlen, "burst: must be > 0 (a bucket that holds no token refuses everything)");
        return SLUICE_EINVAL;
    }
    return SLUICE_OK;
}

/* ---- the limiter ------------------------------------------------------------- */

struct sluice_limiter {
    char name[SLUICE_LIMITER_NAME_MAX + 1];
    const sluice_clock *clock;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    double rate;
    uint64_t burst;
    sluice__tb tb;
    unsigned waiters;
    sluice_limiter_stats st; /* counters */
};

void sluice_limiter_config_init(sluice_limiter_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_limiter_create(const sluice_limiter_config *cfg, sluice_limiter **out, char *errbuf,
                                 size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice__limiter_check(cfg->rate, cfg->burst, errbuf, errlen);
    if (err) {
        return err;
    }
    sluice_limiter *l = calloc(1, sizeof *l);
    if (!l) {
        return SLUICE_ENOMEM;
    }
    err = sluice__sync_name_copy(l->name, sizeof l->name, cfg->name, "limiter", errbuf, errlen);
    if (err) {
        free(l);
        return err;
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        return SLUICE_ENOMEM;
    }
    l->clock = cfg->clock ? cfg->clock : sluice_clock_system();
    l->rate = cfg->rate;
    l->burst = cfg->burst;
    sluice__tb_init(&l->tb, l->burst, sluice_clock_now(l->clock));
    *out = l;
    return SLUICE_OK;
}

void sluice_limiter_destroy(sluice_limiter *l)
{
    if (!l) {
        return;
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

bool sluice_limiter_allow_n(sluice_limiter *l, uint64_t n)
{
    if (!l) {
        return false;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    bool ok = sluice__tb_allow(&l->tb, l->rate, l->burst, n, now);
    if (ok) {
        l->st.allowed++;
    } else {
        l->st.limited++;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

bool sluice_limiter_allow(sluice_limiter *l)
{
    return sluice_limiter_allow_n(l, 1);
}

sluice_err sluice_limiter_reserve(sluice_limiter *l, uint64_t n, sluice_reservation *out)
{
    if (!l || !out) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    sluice_err err = sluice__tb_reserve(&l->tb, l->rate, l->burst, n, now, out);
    if (err) {
        l->st.rejected++;
    } else {
        l->st.allowed++;
    }
    pthread_mutex_unlock(&l->mu);
    return err;
}

void sluice_limiter_cancel(sluice_limiter *l, const sluice_reservation *r)
{
    if (!l || !r) {
        return;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    sluice__tb_cancel(&l->tb, l->rate, l->burst, r, now);
    pthread_mutex_unlock(&l->mu);
}

sluice_err sluice_limiter_wait(sluice_limiter *l, uint64_t n, sluice_ctx *ctx)
{
    if (!l) {
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice_ctx_err(ctx);
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    if (err) {
        if (err == SLUICE_ETIMEDOUT) {
            l->st.wait_timeouts++;
        } else {
            l->st.wait_canceled++;
        }
        pthread_mutex_unlock(&l->mu);
        return err;
    }
    sluice_reservation r;
    err = sluice__tb_reserve(&l->tb, l->rate, l->burst, n, now, &r);
    if (err) {
        l->st.rejected++;
        pthread_mutex_unlock(&l->mu);
        return err;
    }
    if (r.delay_ns == 0) {
        l->st.allowed++;
        pthread_mutex_unlock(&l->mu);
        return SLUICE_OK;
    }
    /* Would the context's deadline come first? Then do not even wait. */
    uint64_t cd = sluice_ctx_deadline(ctx);
    if (cd && cd < r.act_at_ns && sluice__same_clock(sluice_ctx_clock(ctx), l->clock)) {
        sluice__tb_cancel(&l->tb, l->rate, l->burst, &r, now);
        l->st.wait_timeouts++;
        pthread_mutex_unlock(&l->mu);
        return SLUICE_ETIMEDOUT;
    }
    l->waiters++;
    err = sluice__sync_sleep_until(&l->mu, l->clock, r.act_at_ns, ctx);
    l->waiters--;
    if (err) {
        sluice__tb_cancel(&l->tb, l->rate, l->burst, &r, sluice_clock_now(l->clock));
        if (err == SLUICE_ETIMEDOUT) {
            l->st.wait_timeouts++;
        } else {
            l->st.wait_canceled++;
        }
    } else {
        l->st.allowed++;
        l->st.waited++;
    }
    pthread_mutex_unlock(&l->mu);
    if (err) {
        sluice_ctx_err(ctx); /* observe a passed deadline outside our lock */
    }
    return err;
}

sluice_err sluice_limiter_set_rate(sluice_limiter *l, double rate)
{
    if (!l || sluice__limiter_check(rate, 1, NULL, 0)) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    if (l->burst == 0 && !isinf(rate)) {
        pthread_mutex_unlock(&l->mu);
        return SLUICE_EINVAL; /* created with an infinite rate and no burst */
    }
    sluice__tb_advance(&l->tb, l->rate, l->burst, now);
    l->rate = rate;
    pthread_mutex_unlock(&l->mu);
    return SLUICE_OK;
}

sluice_err sluice_limiter_set_burst(sluice_limiter *l, uint64_t burst)
{
    if (!l) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    if (sluice__limiter_check(l->rate, burst, NULL, 0)) {
        pthread_mutex_unlock(&l->mu);
        return SLUICE_EINVAL;
    }
    sluice__tb_advance(&l->tb, l->rate, l->burst, now);
    l->burst = burst;
    if (l->tb.tokens > (double)burst) {
        l->tb.tokens = (double)burst;
    }
    pthread_mutex_unlock(&l->mu);
    return SLUICE_OK;
}

void sluice_limiter_stats_get(sluice_limiter *l, sluice_limiter_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!l) {
        return;
    }
    uint64_t now = sluice_clock_now(l->clock);
    pthread_mutex_lock(&l->mu);
    sluice__tb_advance(&l->tb, l->rate, l->burst, now);
    *out = l->st;
    out->rate = l->rate;
    out->burst = l->burst;
    out->tokens = l->tb.tokens;
    out->waiters = l->waiters;
    pthread_mutex_unlock(&l->mu);
}

const char *sluice_limiter_name(const sluice_limiter *l)
{
    return l ? l->name : NULL;
}
