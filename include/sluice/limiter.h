/*
 * sluice/limiter.h - token-bucket rate limiters: one bucket, or one bucket
 * per key (tenant, client, route) with a bound on how many keys are kept.
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens per
 * second. A call spends tokens: allow() takes them only if they are there
 * now; reserve() takes them now and says how long to wait before acting
 * (the bucket may go into debt); wait() reserves and sleeps until then, or
 * until the context ends (the reservation is then given back). This is
 * the model of Go's golang.org/x/time/rate (Limit, Burst, Allow, Reserve,
 * Wait), with the same edge cases:
 *   - rate SLUICE_RATE_INF: every call is allowed and burst is ignored;
 *   - rate 0: the bucket starts full and never refills (burst calls, then
 *     none); wait() then returns SLUICE_EAGAIN instead of waiting forever;
 *   - a request for more than `burst` tokens can never be served:
 *     SLUICE_EOVERFLOW at once;
 *   - wait() fails at once with SLUICE_ETIMEDOUT when the context's
 *     deadline is before the time the tokens would be ready (Go: "would
 *     exceed context deadline"), without taking them.
 *
 * Example (a limiter in front of a pool):
 *
 *     sluice_limiter_config cfg;
 *     sluice_limiter_config_init(&cfg);
 *     cfg.name = "ingest";
 *     cfg.rate = 200;   // tokens per second
 *     cfg.burst = 50;
 *     sluice_limiter *lim;
 *     if (sluice_limiter_create(&cfg, &lim, errbuf, sizeof errbuf)) ...;
 *
 *     if (!sluice_limiter_allow(lim))               // shed: answer 429
 *         return reply_429();
 *     sluice_pool_submit(pool, handle, req);
 *
 *     // or pace a producer, giving up with the request:
 *     if (sluice_limiter_wait(lim, 1, req_ctx) == SLUICE_OK)
 *         sluice_pool_submit(pool, handle, req);
 *
 * Per key:
 *
 *     sluice_keyed_limiter_config kc;
 *     sluice_keyed_limiter_config_init(&kc);
 *     kc.rate = 10; kc.burst = 20; kc.max_keys = 10000;
 *     sluice_keyed_limiter *per_tenant;
 *     sluice_keyed_limiter_create(&kc, &per_tenant, errbuf, sizeof errbuf);
 *     if (!sluice_keyed_limiter_allow(per_tenant, tenant_id, 1)) return reply_429();
 *
 * Thread-safety: every call is safe from any thread. Each limiter has one
 * mutex; no user code runs under it (context callbacks run outside it).
 */
#ifndef SLUICE_LIMITER_H
#define SLUICE_LIMITER_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"

/* A rate with no limit at all. */
#define SLUICE_RATE_INF ((double)INFINITY)
#define SLUICE_LIMITER_NAME_MAX 48

typedef struct sluice_limiter sluice_limiter;

typedef struct sluice_limiter_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "limiter". */
    const char *name;
    /* Tokens per second, >= 0 and not NaN; SLUICE_RATE_INF for no limit. */
    double rate;
    /* Required, > 0 (unless rate is SLUICE_RATE_INF): the bucket's size,
     * which is also the largest single request. The bucket starts full. */
    uint64_t burst;
    const sluice_clock *clock; /* NULL = system */
} sluice_limiter_config;

/* sluice_limiter_config_init - zero cfg; the caller sets rate and burst. */
SLUICE_API void sluice_limiter_config_init(sluice_limiter_config *cfg);

/*
 * sluice_limiter_create - a limiter with a full bucket.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf ("rate: must
 * be >= 0 (or SLUICE_RATE_INF), got -1"; "burst: must be > 0 ..."); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_limiter_destroy.
 */
SLUICE_API sluice_err sluice_limiter_create(const sluice_limiter_config *cfg, sluice_limiter **out,
                                            char *errbuf, size_t errlen);

/* sluice_limiter_destroy - free it. NULL is a no-op. No call may be in
 * progress (in particular no thread may be inside sluice_limiter_wait). */
SLUICE_API void sluice_limiter_destroy(sluice_limiter *lim);

/* sluice_limiter_allow - take one token if there is one now. Never blocks. */
SLUICE_API bool sluice_limiter_allow(sluice_limiter *lim);

/* sluice_limiter_allow_n - take n tokens if they are all there now. false
 * for n > burst, n == 0 is always allowed. Never blocks. */
SLUICE_API bool sluice_limiter_allow_n(sluice_limiter *lim, uint64_t n);

/* A reservation: n tokens are taken; act no earlier than act_at_ns.
 * The times saturate at the clock's end: act_at_ns is at most UINT64_MAX
 * and delay_ns is always exactly act_at_ns - reserved_at_ns (so adding it
 * to reserved_at_ns never wraps). act_at_ns == UINT64_MAX means the debt
 * would be paid back only at or after the clock's end, 2^64 ns (about 584
 * years) after its zero: at a rate of 1e-9/s one token is 1e18 ns (31
 * years), 19 tokens are past it. */
typedef struct sluice_reservation {
    uint64_t tokens;
    uint64_t reserved_at_ns; /* limiter clock */
    uint64_t act_at_ns;      /* limiter clock; == reserved_at_ns when no wait is needed; <= UINT64_MAX */
    uint64_t delay_ns;       /* act_at_ns - reserved_at_ns: at most UINT64_MAX - reserved_at_ns */
} sluice_reservation;

/*
 * sluice_limiter_reserve - take n tokens now (possibly into debt) and say
 * when the caller may act. The caller either waits delay_ns and acts, or
 * gives the tokens back with sluice_limiter_cancel.
 * Returns: SLUICE_OK; SLUICE_EOVERFLOW (n > burst: never possible);
 * SLUICE_EAGAIN (rate 0 and not enough tokens: never possible);
 * SLUICE_EINVAL (NULL argument). A debt that a positive rate pays back
 * only past the clock's end is still taken (SLUICE_OK), with act_at_ns
 * saturated at UINT64_MAX (see sluice_reservation); a cancel before then
 * gives it back. n = 0 (or an infinite rate) takes nothing and needs no
 * wait; n may be up to burst, UINT64_MAX included.
 */
SLUICE_API sluice_err sluice_limiter_reserve(sluice_limiter *lim, uint64_t n, sluice_reservation *out);

/*
 * sluice_limiter_cancel - give a reservation's tokens back, if the time to
 * act has not come yet (after that the tokens are considered spent). All
 * n tokens are returned (Go returns fewer when later reservations were
 * made; the total rate is the same either way). The bucket never exceeds
 * burst. Thread-safe.
 */
SLUICE_API void sluice_limiter_cancel(sluice_limiter *lim, const sluice_reservation *r);

/*
 * sluice_limiter_wait - reserve n tokens and block until they are ready,
 * or until ctx ends (the reservation is then cancelled).
 * Returns: SLUICE_OK; ctx's cause (SLUICE_ECANCELED, SLUICE_ETIMEDOUT, ...);
 * SLUICE_ETIMEDOUT at once when ctx's deadline comes before the tokens
 * would (nothing is taken); SLUICE_EOVERFLOW (n > burst); SLUICE_EAGAIN
 * (rate 0, not enough tokens); SLUICE_EINVAL.
 * Deadlock hazard: none from the limiter; it holds no lock while ctx
 * callbacks run. A NULL ctx waits as long as the reservation says: for a
 * reservation saturated at the clock's end (act_at_ns UINT64_MAX) that is
 * for ever, so give a slow limiter a ctx with a deadline (a deadline before
 * act_at_ns returns SLUICE_ETIMEDOUT at once, nothing taken).
 */
SLUICE_API sluice_err sluice_limiter_wait(sluice_limiter *lim, uint64_t n, sluice_ctx *ctx);

/* sluice_limiter_set_rate / _set_burst - change the bucket live (tokens
 * earned so far at the old rate are kept; a smaller burst caps them). */
SLUICE_API sluice_err sluice_limiter_set_rate(sluice_limiter *lim, double rate);
SLUICE_API sluice_err sluice_limiter_set_burst(sluice_limiter *lim, uint64_t burst);

typedef struct sluice_limiter_stats {
    /* gauges */
    double rate;
    uint64_t burst;
    double tokens;    /* available now (negative while in debt to reservations) */
    unsigned waiters; /* threads sleeping in wait() */
    /* counters */
    uint64_t allowed;       /* allow() true, reserve() OK, wait() OK */
    uint64_t limited;       /* allow() false */
    uint64_t waited;        /* of the allowed waits, how many slept */
    uint64_t wait_timeouts; /* wait() ended SLUICE_ETIMEDOUT (incl. "deadline too soon") */
    uint64_t wait_canceled; /* wait() ended with another ctx cause */
    uint64_t rejected;      /* EOVERFLOW / EAGAIN refusals of reserve and wait */
} sluice_limiter_stats;

SLUICE_API void sluice_limiter_stats_get(sluice_limiter *lim, sluice_limiter_stats *out);
SLUICE_API const char *sluice_limiter_name(const sluice_limiter *lim);

/* ---- one bucket per key ------------------------------------------------------ */

typedef struct sluice_keyed_limiter sluice_keyed_limiter;

#define SLUICE_KEYED_LIMITER_KEY_MAX 256
#define SLUICE_KEYED_LIMITER_DEFAULT_KEYS 10000

typedef struct sluice_keyed_limiter_config {
    const char *name; /* as for sluice_limiter; NULL = "keyed_limiter" */
    double rate;      /* per key, as sluice_limiter_config.rate */
    uint64_t burst;   /* per key, as sluice_limiter_config.burst */
    /* The most keys tracked; past it, the least recently used key is
     * forgotten (its bucket starts full if it comes back).
     * 0 = SLUICE_KEYED_LIMITER_DEFAULT_KEYS. */
    size_t max_keys;
    const sluice_clock *clock; /* NULL = system */
} sluice_keyed_limiter_config;

SLUICE_API void sluice_keyed_limiter_config_init(sluice_keyed_limiter_config *cfg);

/* Returns as sluice_limiter_create; "max_keys: ..." for a bad bound. */
SLUICE_API sluice_err sluice_keyed_limiter_create(const sluice_keyed_limiter_config *cfg,
                                                  sluice_keyed_limiter **out, char *errbuf, size_t errlen);

/* Frees it and every key. NULL is a no-op. No call may be in progress. */
SLUICE_API void sluice_keyed_limiter_destroy(sluice_keyed_limiter *kl);

/*
 * sluice_keyed_limiter_allow - take n tokens from key's bucket if they are
 * there now (creating the bucket, full, on first use; that may evict the
 * least recently used key). key: a NUL-terminated string of 1 to
 * SLUICE_KEYED_LIMITER_KEY_MAX bytes; copied. false for a bad key or
 * n > burst; an allocation failure fails open (true) and is counted in
 * alloc_failures, so a memory shortage does not turn into an outage.
 */
SLUICE_API bool sluice_keyed_limiter_allow(sluice_keyed_limiter *kl, const char *key, uint64_t n);

/*
 * sluice_keyed_limiter_wait - sluice_limiter_wait for key's bucket.
 * Returns as sluice_limiter_wait, plus SLUICE_EINVAL for a bad key and
 * SLUICE_ENOMEM when the key's bucket could not be created.
 */
SLUICE_API sluice_err sluice_keyed_limiter_wait(sluice_keyed_limiter *kl, const char *key, uint64_t n,
                                                sluice_ctx *ctx);

/* sluice_keyed_limiter_tokens - tokens available now for key (burst for an
 * unknown key, which would start full). Does not create or touch the key. */
SLUICE_API double sluice_keyed_limiter_tokens(sluice_keyed_limiter *kl, const char *key);

typedef struct sluice_keyed_limiter_stats {
    /* gauges */
    size_t keys; /* tracked now */
    size_t max_keys;
    double rate;
    uint64_t burst;
    /* counters */
    uint64_t allowed;
    uint64_t limited;
    uint64_t evictions; /* keys forgotten to stay within max_keys */
    uint64_t wait_timeouts;
    uint64_t wait_canceled;
    uint64_t alloc_failures;
} sluice_keyed_limiter_stats;

SLUICE_API void sluice_keyed_limiter_stats_get(sluice_keyed_limiter *kl, sluice_keyed_limiter_stats *out);
SLUICE_API const char *sluice_keyed_limiter_name(const sluice_keyed_limiter *kl);

#endif /* SLUICE_LIMITER_H */
