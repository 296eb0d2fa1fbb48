/*
 * src/sync/retry.c - retries with backoff, jitter and a shared budget.
 *
 * Purpose. Retry a failing call a bounded number of times, spaced by a
 * jittered exponential backoff, never past its deadline, and never more
 * than a shared budget allows, so that retries cannot multiply the load
 * on a downstream that is already failing. The contract is in
 * sluice/retry.h; this essay is about how.
 *
 * The budget. A sliding window of BUDGET_SLOTS slots, each window/10 long,
 * counting first attempts (deposits) and granted retries (withdrawals).
 * Slot i holds the counts of absolute slot number epoch[i]; a slot whose
 * epoch is older than the window is reset when it is next used, and the
 * window's sums skip slots older than the current one minus 9. A retry is
 * granted when retries_in_window + 1 <= ratio * firsts_in_window +
 * min_per_sec * window_seconds. This is Finagle's RetryBudget (deposits
 * that expire after a TTL, a reserve of minRetriesPerSec * TTL) with the
 * expiry done by slots instead of per token: the bound holds over every
 * window that ends at a grant and starts at a slot boundary.
 *
 * The call. Both ways of running a call share one state machine (an
 * `rcall`): begin (deadline = the earlier of the context's deadline and
 * call_timeout after the start; a deposit), attempt, and after a failure
 * decide(): stop when the context is done, the predicate refuses, the
 * attempts are used up, the next backoff would end at or past the
 * deadline, or the budget refuses, in that order (so the budget is only
 * asked for retries that would really happen); else back off. The sync
 * call sleeps on its own thread (sluice__sync_sleep_until: a context
 * cancel wakes it at once). The pool call instead hands the rcall to the
 * retrier's timer, whose thread resubmits the attempt when the backoff
 * ends; a worker never sleeps.
 *
 * Accounting. Every accepted pool call ends exactly once, in end():
 * success, a stop from decide(), a panic (a cleanup handler pushed around
 * the attempt ends the call before the pool unwinds), a pool hand-back
 * (the attempt's own on_abandon puts the end on the timer thread: done
 * is user code and on_abandon must not block or call the pool; inline
 * only when the timer cannot take it), a refused resubmit, or the retrier's
 * destroy (pending timer entries are fired with `canceled`). end() runs
 * the done callback, frees the rcall and only then drops in_flight, so
 * destroy, which waits for in_flight to reach zero, never frees the
 * retrier under a call still touching it.
 *
 * Destroy. closing is set under r->mu; from then on an attempt that
 * fails ends its call instead of scheduling (the check and the timer add
 * happen under r->mu, so none slips in after), and a timer entry that
 * fires ends its call instead of resubmitting. Destroy waits until no
 * call is queued or running on the pool (in_flight == waiting), destroys
 * the timer (which fires what is left with canceled set) and frees.
 *
 * Lock order: r->mu -> timer mutex (timer add); r->mu -> budget mutex is
 * never needed (the budget is called without r->mu). No user code (the
 * attempt, the predicate, done) and no pool call runs under either.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/retry.h"
#include "sluice/task.h"
#include "sync/sync_internal.h"
#include "sync/timer.h"

#define BUDGET_SLOTS 10

/* ---- names ---------------------------------------------------------------------- */

const char *sluice_jitter_name(sluice_jitter jitter)
{
    switch (jitter) {
#define NAME_CASE_(id, name)                                                                                 \
    case SLUICE_JITTER_##id:                                                                                 \
        return name;
        SLUICE_JITTER_MAP(NAME_CASE_)
#undef NAME_CASE_
    case SLUICE_JITTER_COUNT_:
        break;
    }
    return "unknown";
}

const char *sluice_retry_outcome_name(sluice_retry_outcome outcome)
{
    switch (outcome) {
#define NAME_CASE_(id, name)                                                                                 \
    case SLUICE_RETRY_##id:                                                                                  \
        return name;
        SLUICE_RETRY_OUTCOME_MAP(NAME_CASE_)
#undef NAME_CASE_
    case SLUICE_RETRY_OUTCOME_COUNT_:
        break;
    }
    return "unknown";
}

/* ---- the budget ----------------------------------------------------------------- */

struct sluice_retry_budget {
    /* Immutable after create. */
    char name[SLUICE_RETRY_NAME_MAX + 1];
    double ratio;
    double min_per_sec;
    double reserve; /* min_per_sec * window seconds */
    uint64_t window_ns;
    uint64_t slot_ns;
    const sluice_clock *clock;

    pthread_mutex_t mu;
    /* Guarded by mu. */
    uint64_t epoch[BUDGET_SLOTS]; /* absolute slot number each slot counts */
    uint64_t firsts[BUDGET_SLOTS];
    uint64_t retries[BUDGET_SLOTS];
    uint64_t total_firsts, total_retries, exhausted;
};

void sluice_retry_budget_config_init(sluice_retry_budget_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
        cfg->ratio = 0.1;
        cfg->min_per_sec = 10;
    }
}

sluice_err sluice_retry_budget_create(const sluice_retry_budget_config *cfg, sluice_retry_budget **out,
                                      char *errbuf, size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    if (!isfinite(cfg->ratio) || cfg->ratio < 0 || cfg->ratio > 1000) {
        sluice__errf(errbuf, errlen, "ratio: must be finite and in [0, 1000], got %g", cfg->ratio);
        return SLUICE_EINVAL;
    }
    if (!isfinite(cfg->min_per_sec) || cfg->min_per_sec < 0 || cfg->min_per_sec > 1e6) {
        sluice__errf(errbuf, errlen, "min_per_sec: must be finite and in [0, 1e6], got %g", cfg->min_per_sec);
        return SLUICE_EINVAL;
    }
    uint64_t window = cfg->window_ns ? cfg->window_ns : 10 * SLUICE_NS_PER_SEC;
    if (window < 10 * SLUICE_NS_PER_MS || window > 3600 * SLUICE_NS_PER_SEC) {
        sluice__errf(errbuf, errlen, "window_ns: must be in [10 ms, 1 hour], got %llu ns",
                     (unsigned long long)window);
        return SLUICE_EINVAL;
    }
    sluice_retry_budget *b = calloc(1, sizeof *b);
    if (!b) {
        return SLUICE_ENOMEM;
    }
    sluice_err err =
        sluice__sync_name_copy(b->name, sizeof b->name, cfg->name, "retry_budget", errbuf, errlen);
    if (err) {
        free(b);
        return err;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return SLUICE_ENOMEM;
    }
    b->ratio = cfg->ratio;
    b->min_per_sec = cfg->min_per_sec;
    b->window_ns = window;
    b->slot_ns = window / BUDGET_SLOTS;
    b->reserve = cfg->min_per_sec * ((double)window / 1e9);
    b->clock = cfg->clock;
    for (int i = 0; i < BUDGET_SLOTS; i++) {
        b->epoch[i] = UINT64_MAX; /* never used: matches no slot number */
    }
    *out = b;
    return SLUICE_OK;
}

void sluice_retry_budget_destroy(sluice_retry_budget *b)
{
    if (!b) {
        return;
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* The slot for now, reset if it still holds an older slot's counts (mu held). */
static size_t budget_slot(sluice_retry_budget *b, uint64_t *cur)
{
    uint64_t s = sluice_clock_now(b->clock) / b->slot_ns;
    size_t i = (size_t)(s % BUDGET_SLOTS);
    if (b->epoch[i] != s) {
        b->epoch[i] = s;
        b->firsts[i] = 0;
        b->retries[i] = 0;
    }
    *cur = s;
    return i;
}

/* Sums over the window ending at slot cur (mu held). */
static void budget_sums(const sluice_retry_budget *b, uint64_t cur, uint64_t *firsts, uint64_t *retries)
{
    uint64_t f = 0, r = 0;
    for (size_t i = 0; i < BUDGET_SLOTS; i++) {
        if (b->epoch[i] != UINT64_MAX && b->epoch[i] <= cur && cur - b->epoch[i] < BUDGET_SLOTS) {
            f += b->firsts[i];
            r += b->retries[i];
        }
    }
    *firsts = f;
    *retries = r;
}

void sluice_retry_budget_deposit(sluice_retry_budget *b)
{
    if (!b) {
        return;
    }
    uint64_t cur;
    pthread_mutex_lock(&b->mu);
    b->firsts[budget_slot(b, &cur)]++;
    b->total_firsts++;
    pthread_mutex_unlock(&b->mu);
}

/* Take back a deposit for a call that was never accepted. */
static void budget_undeposit(sluice_retry_budget *b)
{
    uint64_t cur;
    pthread_mutex_lock(&b->mu);
    size_t i = budget_slot(b, &cur);
    if (b->firsts[i] > 0) {
        b->firsts[i]--;
    }
    b->total_firsts--;
    pthread_mutex_unlock(&b->mu);
}

bool sluice_retry_budget_withdraw(sluice_retry_budget *b)
{
    if (!b) {
        return false;
    }
    uint64_t cur, f, r;
    pthread_mutex_lock(&b->mu);
    size_t i = budget_slot(b, &cur);
    budget_sums(b, cur, &f, &r);
    bool ok = (double)(r + 1) <= b->ratio * (double)f + b->reserve;
    if (ok) {
        b->retries[i]++;
        b->total_retries++;
    } else {
        b->exhausted++;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void sluice_retry_budget_stats_get(sluice_retry_budget *b, sluice_retry_budget_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!b) {
        return;
    }
    uint64_t cur, f, r;
    pthread_mutex_lock(&b->mu);
    budget_slot(b, &cur);
    budget_sums(b, cur, &f, &r);
    out->window_first_attempts = f;
    out->window_retries = r;
    double bal = b->ratio * (double)f + b->reserve - (double)r;
    out->balance = bal > 0 ? bal : 0;
    out->first_attempts = b->total_firsts;
    out->retries = b->total_retries;
    out->exhausted = b->exhausted;
    pthread_mutex_unlock(&b->mu);
    out->ratio = b->ratio;
    out->min_per_sec = b->min_per_sec;
    out->window_ns = b->window_ns;
}

const char *sluice_retry_budget_name(const sluice_retry_budget *b)
{
    return b ? b->name : "";
}

/* ---- backoff -------------------------------------------------------------------- */

#define DEFAULT_BASE_NS (100 * SLUICE_NS_PER_MS)
#define DEFAULT_MAX_NS (10 * SLUICE_NS_PER_SEC)

/* A uniform double in [0, 1) from 53 random bits. */
static double unit(uint64_t *rng)
{
    return (double)(sluice__splitmix64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* A uniform integer in [lo, hi) (lo when hi <= lo). */
static uint64_t uniform(uint64_t lo, uint64_t hi, uint64_t *rng)
{
    if (hi <= lo) {
        return lo;
    }
    uint64_t v = lo + (uint64_t)((double)(hi - lo) * unit(rng));
    return v < hi ? v : hi - 1; /* rounding of the double can reach hi */
}

uint64_t sluice_backoff_next(const sluice_backoff *b, unsigned retry, uint64_t prev_ns, uint64_t *rng)
{
    sluice_backoff d = {0};
    if (b) {
        d = *b;
    }
    uint64_t max = d.max_ns ? d.max_ns : DEFAULT_MAX_NS;
    uint64_t base = d.base_ns ? d.base_ns : DEFAULT_BASE_NS;
    if (base > max) {
        base = max;
    }
    double mult = d.multiplier > 0 ? d.multiplier : 2.0;
    if (!(mult >= 1.0)) {
        mult = 1.0;
    } else if (mult > 16.0) {
        mult = 16.0;
    }
    if (retry == 0) {
        retry = 1;
    }
    double stepd = (double)base * pow(mult, (double)(retry - 1));
    uint64_t step = stepd >= (double)max ? max : (uint64_t)stepd;
    uint64_t scratch = 0;
    if (!rng) {
        rng = &scratch;
    }
    switch (d.jitter) {
    case SLUICE_JITTER_NONE:
        return step;
    case SLUICE_JITTER_EQUAL:
        return step / 2 + uniform(0, step - step / 2, rng);
    case SLUICE_JITTER_DECORRELATED: {
        uint64_t prev = prev_ns >= base ? prev_ns : base;
        uint64_t hi = prev > UINT64_MAX / 3 ? UINT64_MAX : prev * 3;
        uint64_t v = uniform(base, hi, rng);
        return v < max ? v : max;
    }
    case SLUICE_JITTER_FULL:
    case SLUICE_JITTER_COUNT_:
        break;
    }
    return uniform(0, step, rng);
}

/* ---- the retrier ---------------------------------------------------------------- */

struct sluice_retry {
    /* Immutable after create. */
    char name[SLUICE_RETRY_NAME_MAX + 1];
    unsigned max_attempts;
    sluice_backoff backoff;
    uint64_t call_timeout_ns;
    bool (*retryable)(int rc, void *user);
    void *user;
    sluice_retry_budget *budget;
    sluice_pool *pool;
    const sluice_clock *clock;
    uint64_t seed;
    sluice__timer *timer; /* with a pool only */

    _Atomic uint64_t next_call; /* numbers the calls for their random streams */

    pthread_mutex_t mu;
    pthread_cond_t cv_idle; /* in_flight dropped, for destroy */
    /* Guarded by mu. */
    bool closing;
    sluice_retry_stats st;
};

typedef struct rcall {
    sluice_retry *r;
    sluice_task_fn fn;
    void *arg;
    sluice_retry_done_fn done; /* NULL for a sync call */
    sluice_ctx *ctx;           /* retained for a pool call */
    uint64_t start_ns;
    uint64_t deadline_ns; /* 0 = none */
    uint64_t prev_delay_ns;
    uint64_t rng;
    unsigned attempts;
    int last_rc;
    sluice_abandon_reason handed_back; /* why the pool handed the attempt back (ended by end_due) */
} rcall;

/* "Go on retrying", as a decide() result. */
#define CONTINUE SLUICE_RETRY_OUTCOME_COUNT_

static _Thread_local unsigned tls_attempt;

unsigned sluice_retry_attempt(void)
{
    return tls_attempt;
}

void sluice_retry_config_init(sluice_retry_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_retry_create(const sluice_retry_config *cfg, sluice_retry **out, char *errbuf,
                               size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    unsigned max_attempts = cfg->max_attempts ? cfg->max_attempts : 3;
    if (max_attempts > SLUICE_RETRY_MAX_ATTEMPTS) {
        sluice__errf(errbuf, errlen, "max_attempts: must be <= %u, got %u", SLUICE_RETRY_MAX_ATTEMPTS,
                     cfg->max_attempts);
        return SLUICE_EINVAL;
    }
    sluice_backoff bo = cfg->backoff;
    if (!bo.max_ns) {
        bo.max_ns = DEFAULT_MAX_NS;
    }
    if (!bo.base_ns) {
        bo.base_ns = bo.max_ns < DEFAULT_BASE_NS ? bo.max_ns : DEFAULT_BASE_NS;
    }
    if (bo.base_ns > bo.max_ns) {
        sluice__errf(errbuf, errlen, "backoff.base_ns: must be <= backoff.max_ns (%llu), got %llu",
                     (unsigned long long)bo.max_ns, (unsigned long long)bo.base_ns);
        return SLUICE_EINVAL;
    }
    if (bo.multiplier == 0) {
        bo.multiplier = 2.0;
    }
    if (!(bo.multiplier >= 1.0 && bo.multiplier <= 16.0)) {
        sluice__errf(errbuf, errlen, "backoff.multiplier: must be in [1, 16] (0 = 2), got %g", bo.multiplier);
        return SLUICE_EINVAL;
    }
    if ((unsigned)bo.jitter >= (unsigned)SLUICE_JITTER_COUNT_) {
        sluice__errf(errbuf, errlen, "backoff.jitter: unknown value %d", (int)bo.jitter);
        return SLUICE_EINVAL;
    }
    if (cfg->call_timeout_ns > 365ull * 24 * 3600 * SLUICE_NS_PER_SEC) {
        sluice__errf(errbuf, errlen, "call_timeout_ns: must be <= 1 year, got %llu",
                     (unsigned long long)cfg->call_timeout_ns);
        return SLUICE_EINVAL;
    }
    const sluice_clock *clk = cfg->clock;
    if (cfg->pool) {
        const sluice_clock *pc = sluice_pool_clock(cfg->pool);
        if (!clk) {
            clk = pc;
        } else if (!sluice__same_clock(clk, pc)) {
            sluice__errf(errbuf, errlen, "clock: differs from the pool's clock (deadlines would not agree)");
            return SLUICE_EINVAL;
        }
    }
    sluice_retry *r = calloc(1, sizeof *r);
    if (!r) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(r->name, sizeof r->name, cfg->name, "retry", errbuf, errlen);
    if (err) {
        free(r);
        return err;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&r->cv_idle) != 0) {
        pthread_mutex_destroy(&r->mu);
        free(r);
        return SLUICE_ENOMEM;
    }
    if (cfg->pool && (err = sluice__timer_create(clk, r->name, &r->timer)) != SLUICE_OK) {
        pthread_cond_destroy(&r->cv_idle);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return err;
    }
    r->max_attempts = max_attempts;
    r->backoff = bo;
    r->call_timeout_ns = cfg->call_timeout_ns;
    r->retryable = cfg->retryable;
    r->user = cfg->user;
    r->budget = cfg->budget;
    r->pool = cfg->pool;
    r->clock = clk;
    r->seed = cfg->seed ? cfg->seed : sluice_clock_now(NULL) ^ (uint64_t)(uintptr_t)r;
    *out = r;
    return SLUICE_OK;
}

void sluice_retry_destroy(sluice_retry *r)
{
    if (!r) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    /* Wait for calls queued or running on the pool: each ends itself now
     * (closing) instead of scheduling another attempt. */
    while (r->st.in_flight > r->st.waiting) {
        sluice__wait_until(NULL, &r->cv_idle, &r->mu, 0);
    }
    pthread_mutex_unlock(&r->mu);
    /* Ends the waiting ones (canceled), on this thread. */
    sluice__timer_destroy(r->timer);
    pthread_mutex_lock(&r->mu);
    while (r->st.in_flight > 0) {
        sluice__wait_until(NULL, &r->cv_idle, &r->mu, 0);
    }
    pthread_mutex_unlock(&r->mu);
    pthread_cond_destroy(&r->cv_idle);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Start a call: deadline, random stream, deposit, counters. */
static void call_begin(sluice_retry *r, rcall *c, sluice_ctx *ctx)
{
    c->r = r;
    c->start_ns = sluice_clock_now(r->clock);
    c->deadline_ns = r->call_timeout_ns ? sluice__add_sat(c->start_ns, r->call_timeout_ns) : 0;
    uint64_t cd = sluice_ctx_deadline(ctx);
    if (cd && sluice__same_clock(sluice_ctx_clock(ctx), r->clock)) {
        c->deadline_ns = sluice__min_deadline(c->deadline_ns, cd);
    }
    uint64_t n = atomic_fetch_add_explicit(&r->next_call, 1, memory_order_relaxed);
    uint64_t s = r->seed + n * 0xd1b54a32d192ed03ull;
    c->rng = sluice__splitmix64(&s);
    if (r->budget) {
        sluice_retry_budget_deposit(r->budget);
    }
    pthread_mutex_lock(&r->mu);
    r->st.calls++;
    r->st.in_flight++;
    pthread_mutex_unlock(&r->mu);
}

/* Count one attempt about to run. */
static void count_attempt(sluice_retry *r, rcall *c)
{
    c->attempts++;
    pthread_mutex_lock(&r->mu);
    r->st.attempts++;
    if (c->attempts > 1) {
        r->st.retries++;
    }
    pthread_mutex_unlock(&r->mu);
}

/* The outcome for a context that is done (or a passed deadline). */
static sluice_retry_outcome ctx_outcome(sluice_err cause, sluice_err *err)
{
    *err = cause;
    return cause == SLUICE_ETIMEDOUT ? SLUICE_RETRY_DEADLINE : SLUICE_RETRY_CANCELED;
}

/* Can an attempt start now? CONTINUE, or why not. */
static sluice_retry_outcome may_start(rcall *c, sluice_ctx *ctx, sluice_err *err)
{
    sluice_err cause = sluice_ctx_err(ctx);
    if (cause) {
        return ctx_outcome(cause, err);
    }
    if (sluice__deadline_passed(sluice_clock_now(c->r->clock), c->deadline_ns)) {
        *err = SLUICE_ETIMEDOUT;
        return SLUICE_RETRY_DEADLINE;
    }
    return CONTINUE;
}

/*
 * After a failed attempt: CONTINUE with *delay set, or the outcome that
 * ends the call (*err set). The budget is asked last, so it is charged
 * only for retries that will be attempted.
 */
static sluice_retry_outcome decide(rcall *c, sluice_ctx *ctx, int rc, uint64_t *delay, sluice_err *err)
{
    sluice_retry *r = c->r;
    sluice_err cause = sluice_ctx_err(ctx);
    if (cause) {
        return ctx_outcome(cause, err);
    }
    *err = SLUICE_ETASK;
    if (r->retryable && !r->retryable(rc, r->user)) {
        return SLUICE_RETRY_NOT_RETRYABLE;
    }
    if (c->attempts >= r->max_attempts) {
        return SLUICE_RETRY_EXHAUSTED;
    }
    uint64_t d = sluice_backoff_next(&r->backoff, c->attempts, c->prev_delay_ns, &c->rng);
    /* UINT64_MAX never comes, even when now + d saturates there. */
    if (sluice__deadline_passed(sluice__add_sat(sluice_clock_now(r->clock), d), c->deadline_ns)) {
        *err = SLUICE_ETIMEDOUT;
        return SLUICE_RETRY_DEADLINE;
    }
    if (r->budget && !sluice_retry_budget_withdraw(r->budget)) {
        pthread_mutex_lock(&r->mu);
        r->st.budget_exhausted++;
        pthread_mutex_unlock(&r->mu);
        return SLUICE_RETRY_BUDGET;
    }
    c->prev_delay_ns = d;
    *delay = d;
    *err = SLUICE_OK;
    return CONTINUE;
}

/* Fill res and count the outcome (the call is over but still in flight). */
static void record_end(rcall *c, sluice_retry_outcome outcome, sluice_err err, sluice_retry_result *res)
{
    sluice_retry *r = c->r;
    res->err = outcome == SLUICE_RETRY_SUCCESS ? SLUICE_OK : err;
    res->outcome = outcome;
    res->last_rc = c->last_rc;
    res->attempts = c->attempts;
    uint64_t now = sluice_clock_now(r->clock);
    res->elapsed_ns = now > c->start_ns ? now - c->start_ns : 0;
    pthread_mutex_lock(&r->mu);
    r->st.outcomes[outcome]++;
    pthread_mutex_unlock(&r->mu);
}

static void drop_in_flight(sluice_retry *r)
{
    pthread_mutex_lock(&r->mu);
    r->st.in_flight--;
    pthread_cond_broadcast(&r->cv_idle);
    pthread_mutex_unlock(&r->mu);
    /* r may be freed from here on (destroy was waiting for this). */
}

/* ---- the sync call -------------------------------------------------------------- */

sluice_err sluice_retry_call(sluice_retry *r, sluice_ctx *ctx, sluice_task_fn fn, void *arg,
                             sluice_retry_result *res)
{
    sluice_retry_result scratch;
    if (!res) {
        res = &scratch;
    }
    memset(res, 0, sizeof *res);
    if (!r || !fn) {
        res->err = SLUICE_EINVAL;
        res->outcome = SLUICE_RETRY_REFUSED;
        return SLUICE_EINVAL;
    }
    rcall c = {.fn = fn, .arg = arg};
    call_begin(r, &c, ctx);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    sluice_retry_outcome outcome;
    sluice_err err = SLUICE_OK;
    for (;;) {
        if ((outcome = may_start(&c, ctx, &err)) != CONTINUE) {
            break;
        }
        count_attempt(r, &c);
        unsigned saved = tls_attempt;
        tls_attempt = c.attempts;
        c.last_rc = fn(arg);
        tls_attempt = saved;
        if (c.last_rc == 0) {
            outcome = SLUICE_RETRY_SUCCESS;
            break;
        }
        uint64_t delay = 0;
        if ((outcome = decide(&c, ctx, c.last_rc, &delay, &err)) != CONTINUE) {
            break;
        }
        uint64_t until = sluice__add_sat(sluice_clock_now(r->clock), delay);
        pthread_mutex_lock(&r->mu);
        r->st.waiting++;
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_lock(&mu);
        sluice_err slept = sluice__sync_sleep_until(&mu, r->clock, until, ctx);
        pthread_mutex_unlock(&mu);
        pthread_mutex_lock(&r->mu);
        r->st.waiting--;
        pthread_mutex_unlock(&r->mu);
        if (slept) {
            /* sleep_until reports without observing: let the context run
             * its callbacks and give the settled cause. */
            sluice_err cause = sluice_ctx_err(ctx);
            outcome = ctx_outcome(cause ? cause : slept, &err);
            break;
        }
    }
    pthread_mutex_destroy(&mu);
    record_end(&c, outcome, err, res);
    drop_in_flight(r);
    return res->err;
}

/* ---- the pool call -------------------------------------------------------------- */

static int attempt_task(void *arg);

/* End a pool call: result, done, free, in_flight. */
static void end_call(rcall *c, sluice_retry_outcome outcome, sluice_err err)
{
    sluice_retry *r = c->r;
    sluice_retry_result res;
    record_end(c, outcome, err, &res);
    c->done(&res, c->arg);
    sluice_ctx_release(c->ctx);
    free(c);
    drop_in_flight(r);
}

/* End a call whose attempt the pool handed back for c->handed_back. */
static void end_handed_back(rcall *c)
{
    switch (c->handed_back) {
    case SLUICE_ABANDON_SHED: {
        sluice_err cause = sluice_ctx_err(c->ctx);
        if (cause && cause != SLUICE_ETIMEDOUT) {
            end_call(c, SLUICE_RETRY_CANCELED, cause);
        } else {
            end_call(c, SLUICE_RETRY_DEADLINE, SLUICE_ETIMEDOUT);
        }
        return;
    }
    case SLUICE_ABANDON_DROPPED:
        end_call(c, SLUICE_RETRY_REFUSED, SLUICE_EFULL);
        return;
    case SLUICE_ABANDON_DRAIN:
    case SLUICE_ABANDON_DESTROY:
    case SLUICE_ABANDON_NONE_:         /* not a reason the pool gives */
    case SLUICE_ABANDON_REASON_COUNT_: /* nor this */
        break;
    }
    end_call(c, SLUICE_RETRY_REFUSED, SLUICE_ECLOSED);
}

/* The timer: a call whose attempt the pool handed back ends here, at
 * once, canceled (the retrier's destroy) or not: its outcome is decided. */
static void end_due(void *arg, uint64_t tag, bool canceled)
{
    (void)tag;
    (void)canceled;
    end_handed_back(arg);
}

/* The pool handed a queued attempt back (its on_abandon). The call's end
 * runs user code (done, and the context's callbacks when its deadline has
 * passed), which may block or call the pool, as on_abandon must not: the
 * retrier's timer thread ends it, at once. The call stays in flight until
 * then, so destroy waits for it while the timer still runs. Only if the
 * timer cannot take it (no memory, or its thread cannot start) does the
 * call end here, as retry.h says. */
static void attempt_abandoned(const sluice_abandoned *task)
{
    rcall *c = task->arg;
    c->handed_back = task->reason;
    if (sluice__timer_add(c->r->timer, 0, end_due, c, 0) != SLUICE_OK) {
        end_handed_back(c);
    }
}

static sluice_err submit_attempt(rcall *c, bool nonblocking)
{
    sluice_retry *r = c->r;
    sluice_submit_opts o = {0};
    o.deadline_ns = c->deadline_ns;
    o.ctx = c->ctx;
    o.label = "retry"; /* static: the pool reads it after the call ends (panic report) */
    o.on_abandon = attempt_abandoned;
    /* Nonblocking: take a free place or give up at once. Not a past submit
     * deadline ("now, or 1 ns when the clock reads 0"): on a clock that
     * reads 0, 1 ns was still ahead, and the timer thread waited for space
     * until the clock moved. */
    return nonblocking ? sluice__sync_submit_now(r->pool, attempt_task, c, &o)
                       : sluice_pool_submit_ex(r->pool, attempt_task, c, &o);
}

/* The timer: a backoff ended (or the retrier is closing). */
static void retry_due(void *arg, uint64_t tag, bool canceled)
{
    (void)tag;
    rcall *c = arg;
    sluice_retry *r = c->r;
    pthread_mutex_lock(&r->mu);
    r->st.waiting--;
    bool closing = r->closing;
    pthread_mutex_unlock(&r->mu);
    if (canceled || closing) {
        end_call(c, SLUICE_RETRY_REFUSED, SLUICE_ECLOSED);
        return;
    }
    sluice_err err;
    sluice_retry_outcome outcome = may_start(c, c->ctx, &err);
    if (outcome != CONTINUE) {
        end_call(c, outcome, err);
        return;
    }
    err = submit_attempt(c, true);
    if (err) {
        end_call(c, SLUICE_RETRY_REFUSED, err);
    }
}

static void attempt_panicked(void *arg)
{
    rcall *c = arg;
    tls_attempt = 0;
    c->last_rc = 0;
    end_call(c, SLUICE_RETRY_PANICKED, SLUICE_ETASK);
}

static int attempt_task(void *arg)
{
    rcall *c = arg;
    sluice_retry *r = c->r;
    sluice_err err;
    sluice_retry_outcome outcome = may_start(c, c->ctx, &err);
    if (outcome != CONTINUE) {
        end_call(c, outcome, err);
        return 0;
    }
    count_attempt(r, c);
    bool guarded = sluice_cleanup_push(attempt_panicked, c) == SLUICE_OK;
    unsigned saved = tls_attempt;
    tls_attempt = c->attempts;
    int rc = c->fn(c->arg);
    tls_attempt = saved;
    if (guarded) {
        sluice_cleanup_pop(false);
    }
    c->last_rc = rc;
    if (rc == 0) {
        end_call(c, SLUICE_RETRY_SUCCESS, SLUICE_OK);
        return 0;
    }
    uint64_t delay = 0;
    outcome = decide(c, c->ctx, rc, &delay, &err);
    if (outcome != CONTINUE) {
        end_call(c, outcome, err);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    if (r->closing) {
        err = SLUICE_ECLOSED;
    } else {
        r->st.waiting++;
        err =
            sluice__timer_add(r->timer, sluice__add_sat(sluice_clock_now(r->clock), delay), retry_due, c, 0);
        if (err) {
            r->st.waiting--;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (err) {
        end_call(c, SLUICE_RETRY_REFUSED, err);
    }
    return rc;
}

sluice_err sluice_retry_submit(sluice_retry *r, sluice_ctx *ctx, sluice_task_fn fn, void *arg,
                               sluice_retry_done_fn done)
{
    if (!r || !fn || !done || !r->pool) {
        return SLUICE_EINVAL;
    }
    sluice_err cause = sluice_ctx_err(ctx);
    if (cause) {
        return cause;
    }
    pthread_mutex_lock(&r->mu);
    bool closing = r->closing;
    pthread_mutex_unlock(&r->mu);
    if (closing) {
        return SLUICE_ECLOSED;
    }
    rcall *c = calloc(1, sizeof *c);
    if (!c) {
        return SLUICE_ENOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    c->done = done;
    if (ctx) {
        sluice_ctx_retain(ctx);
        c->ctx = ctx;
    }
    call_begin(r, c, ctx);
    sluice_err err = submit_attempt(c, false);
    if (err) {
        /* Not accepted: as if the call never started. */
        if (r->budget) {
            budget_undeposit(r->budget);
        }
        pthread_mutex_lock(&r->mu);
        r->st.calls--;
        r->st.in_flight--;
        pthread_cond_broadcast(&r->cv_idle);
        pthread_mutex_unlock(&r->mu);
        sluice_ctx_release(c->ctx);
        free(c);
    }
    return err;
}

void sluice_retry_stats_get(sluice_retry *r, sluice_retry_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!r) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}

const char *sluice_retry_name(const sluice_retry *r)
{
    return r ? r->name : "";
}
