/*
 * src/sync/batcher.c - size-or-time batching onto a pool (see
 * sluice/batcher.h).
 *
 * Design. The current batch (`cur`, an sbatch with room for max_items) is
 * filled under b->mu. It is SEALED (handed over as one pool task and
 * replaced by nothing until the next add) by:
 *   - the add that fills it (reason size);
 *   - the timer, max_delay_ns after its first item (reason time): the
 *     first add of a batch schedules a timer entry tagged with the batch's
 *     generation number; an entry whose generation is no longer current
 *     (the batch was sealed by size first) does nothing;
 *   - flush, drain and destroy (reason drain).
 * Sealing needs an in-flight slot (in_flight < max_in_flight). Without
 * one the batch stays current with `seal_due` set, and the batch task that
 * frees a slot seals it (a full current batch is always due). So at most
 * max_in_flight batches are out, and adds wait only when the current
 * batch is full and due.
 *
 * Every sealed batch ends in exactly one place: batch_task (batch_fn
 * returned 0: delivered; non-zero: failure_fn FAILED), its panic cleanup
 * handler (PANICKED), the pool refusing its submit (REFUSED) or handing
 * it back (ABANDONED, through the task's own on_abandon). Items never
 * sealed reach failure_fn only from drain's deadline (UNSENT). Each of
 * these ends in batch_end(), which frees the slot (possibly sealing the
 * due batch) and counts. Submits that happen on a pool worker or the timer
 * thread never block (a past submit deadline), so a full BLOCK pool is a
 * REFUSED failure there rather than a deadlock.
 *
 * The pool's on_abandon (batch_abandoned) must not block or call the pool
 * (pool.h), and failure_fn is user code that may do both: so the batch
 * handed back fails on the timer thread (fail_due), which also submits
 * the due batch its slot seals; once the pool handed a batch back at its
 * drain deadline or destroy (closed for good) every batch fails REFUSED
 * with SLUICE_ECLOSED, what a submit would answer, with no pool call
 * (pool_closed). If the timer cannot take the failure (no memory, no
 * thread), it runs inside on_abandon after all, and a due batch is then
 * submitted by the timer or fails at once (fail_batch_in). So the pool must outlive the batcher; a pool
 * destroyed first anyway is never called again once it handed a batch back.
 *
 * Lock order: b->drain_mu -> b->mu -> timer mutex (the timer add).
 * batch_fn, failure_fn and pool calls run with no batcher lock held.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/enums.h"
#include "base/check.h"
#include "sluice/batcher.h"
#include "sluice/task.h"
#include "sync/sync_internal.h"
#include "sync/timer.h"

#define MAX_IN_FLIGHT 65536u
#define MAX_DELAY_NS (3600ull * SLUICE_NS_PER_SEC)

typedef struct sbatch {
    struct sluice_batcher *b;
    size_t n;
    sluice_flush_reason reason;
    sluice_abandon_reason handed_back; /* why the pool handed it back (failed by fail_due) */
    void *items[];                     /* max_items of them */
} sbatch;

struct sluice_batcher {
    /* Immutable after create. */
    char name[SLUICE_BATCHER_NAME_MAX + 1];
    sluice_pool *pool;
    size_t max_items;
    uint64_t max_delay_ns;
    unsigned max_in_flight;
    uint64_t add_timeout_ns;
    sluice_batch_fn batch_fn;
    sluice_batch_failed_fn failure_fn;
    void *user;
    const sluice_clock *clock;
    sluice__timer *timer;

    pthread_mutex_t drain_mu;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* room, a batch ended, or closed */
    /* Guarded by mu. */
    sbatch *cur;
    uint64_t cur_gen;
    bool seal_due;
    sluice_flush_reason due_reason;
    unsigned in_flight;
    unsigned waiting;
    bool closed;
    bool drained;
    sluice_batcher_stats st;
    size_t nbounds;
    double bounds[SLUICE_HIST_MAX_BUCKETS];
    uint64_t hist[SLUICE_HIST_MAX_BUCKETS + 1];
    uint64_t hist_count;
    uint64_t hist_sum;
    /* Set once the pool handed a batch back at its drain deadline or
     * destroy: closed for good (at destroy, about to be freed), so no
     * batch is submitted to it again: each fails REFUSED (SLUICE_ECLOSED,
     * what the pool would answer) with no pool call. Stored with release
     * in batch_abandoned, loaded with acquire before a submit. */
    _Atomic bool pool_closed;
};

/* The batcher whose batch this thread runs, for EDEADLK. */
static _Thread_local const sluice_batcher *tls_batcher;

/* Names and parsers from the lists in sluice/batcher.h. */
SLUICE__ENUM_FUNCTIONS(sluice_flush_reason, SLUICE_FLUSH_REASON_MAP, 0, "unknown", sluice_flush_reason_name,
                       sluice_flush_reason_parse)
SLUICE__ENUM_FUNCTIONS(sluice_batch_failure, SLUICE_BATCH_FAILURE_MAP, 0, "unknown",
                       sluice_batch_failure_name, sluice_batch_failure_parse)

void sluice_batcher_config_init(sluice_batcher_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

/* ---- sealing and ending (mu held unless said) ------------------------------------ */

static void hist_observe(sluice_batcher *b, size_t n)
{
    size_t i = 0;
    while (i < b->nbounds && (double)n > b->bounds[i]) {
        i++;
    }
    b->hist[i]++;
    b->hist_count++;
    b->hist_sum += n;
}

/* Seal the current batch if it has items and a slot is free; else mark it
 * due. Returns the batch to submit (after dropping mu) or NULL. */
static sbatch *seal(sluice_batcher *b, sluice_flush_reason reason)
{
    if (!b->cur || b->cur->n == 0) {
        return NULL;
    }
    if (b->in_flight >= b->max_in_flight) {
        if (!b->seal_due) {
            b->seal_due = true;
            b->due_reason = reason;
        }
        return NULL;
    }
    if (b->seal_due) {
        reason = b->due_reason; /* the first reason it became due for */
    }
    sbatch *sb = b->cur;
    sb->reason = reason;
    b->cur = NULL;
    b->cur_gen++;
    b->seal_due = false;
    b->in_flight++;
    b->st.batches++;
    b->st.flushes[reason]++;
    hist_observe(b, sb->n);
    pthread_cond_broadcast(&b->cv); /* a full current batch is gone: room */
    return sb;
}

/* A sealed batch ended: free its slot; seal the current batch if due. */
static sbatch *batch_end_locked(sluice_batcher *b)
{
    SLUICE__ASSERT_HELD(&b->mu);
    b->in_flight--;
    sbatch *next = NULL;
    if (b->cur && (b->seal_due || b->cur->n == b->max_items)) {
        next = seal(b, b->seal_due ? b->due_reason : SLUICE_FLUSH_SIZE);
    }
    pthread_cond_broadcast(&b->cv);
    return next;
}

static int batch_task(void *arg);
static void submit_batch(sluice_batcher *b, sbatch *sb, bool nonblocking);

static void batch_abandoned(const sluice_abandoned *task);

static void submit_deferred(void *arg, uint64_t tag, bool canceled);

/* Hand a sealed batch to failure_fn and end it (mu NOT held). The slot it
 * frees may seal the due batch, which is then submitted: at once, except
 * inside the pool's on_abandon (`in_abandon`, the reason the pool gave),
 * whose contract forbids calling the pool: there a DRAIN or DESTROY
 * hand-back means the pool is closed for good, so the due batch fails as
 * the submit would have (REFUSED, SLUICE_ECLOSED), and a DROPPED or SHED
 * one hands the submit to the timer thread (due at once). If the timer
 * cannot take it (no memory, no thread), the batch fails REFUSED with
 * that error. A loop, not a recursion: each turn ends one batch. */
static void fail_batch_in(sbatch *sb, sluice_batch_failure why, int rc, sluice_abandon_reason in_abandon)
{
    sluice_batcher *b = sb->b;
    for (;;) {
        b->failure_fn(sb->items, sb->n, rc, why, b->user);
        pthread_mutex_lock(&b->mu);
        b->st.failed_items += sb->n;
        b->st.batches_failed++;
        b->st.failures[why]++;
        sbatch *next = batch_end_locked(b);
        pthread_mutex_unlock(&b->mu);
        free(sb);
        if (!next) {
            return; /* b may be freed from here on */
        }
        /* `next` holds a slot: b stays valid until it ends. */
        if (in_abandon == SLUICE_ABANDON_NONE_) {
            submit_batch(b, next, true);
            return;
        }
        if (in_abandon == SLUICE_ABANDON_DRAIN || in_abandon == SLUICE_ABANDON_DESTROY) {
            rc = (int)SLUICE_ECLOSED;
        } else {
            sluice_err err = sluice__timer_add(b->timer, 0, submit_deferred, next, 0);
            if (err == SLUICE_OK) {
                return;
            }
            rc = (int)err;
        }
        sb = next;
        why = SLUICE_BATCH_REFUSED;
    }
}

static void fail_batch(sbatch *sb, sluice_batch_failure why, int rc)
{
    fail_batch_in(sb, why, rc, SLUICE_ABANDON_NONE_);
}

/* Submit a sealed batch: without waiting for space in the pool's queue
 * when `nonblocking` (a full BLOCK pool refuses it), else waiting at most
 * until `deadline` (the batcher's clock; 0 = as the pool's submit timeout
 * allows; a deadline already passed is `nonblocking`). A refusal fails
 * the batch. */
static void submit_batch_until(sluice_batcher *b, sbatch *sb, bool nonblocking, uint64_t deadline)
{
    if (atomic_load_explicit(&b->pool_closed, memory_order_acquire)) {
        fail_batch(sb, SLUICE_BATCH_REFUSED, (int)SLUICE_ECLOSED);
        return;
    }
    sluice_submit_opts o = {0};
    o.label = "batcher"; /* static: the pool reads it after the batch ends (panic report) */
    o.on_abandon = batch_abandoned;
    if (!nonblocking && deadline == UINT64_MAX) {
        /* Never comes (sluice__deadline_passed), also on a clock at its
         * end: wait as long as the pool's submit timeout allows. */
        o.submit_deadline_ns = UINT64_MAX;
    } else if (!nonblocking && deadline) {
        /* The deadline is on the batcher's clock; the pool's may differ. */
        uint64_t now = sluice_clock_now(b->clock);
        uint64_t left = deadline > now ? deadline - now : 0;
        nonblocking = left == 0;
        o.submit_deadline_ns = sluice__add_sat(sluice_clock_now(sluice_pool_clock(b->pool)), left);
    }
    sluice_err err = nonblocking ? sluice__sync_submit_now(b->pool, batch_task, sb, &o)
                                 : sluice_pool_submit_ex(b->pool, batch_task, sb, &o);
    if (err) {
        fail_batch(sb, SLUICE_BATCH_REFUSED, (int)err);
    }
}

static void submit_batch(sluice_batcher *b, sbatch *sb, bool nonblocking)
{
    submit_batch_until(b, sb, nonblocking, 0);
}

/* The timer: a batch the pool handed back fails here (ABANDONED, with the
 * pool's reason), off the pool's on_abandon, so failure_fn (user code: it
 * may block to spool the items, or submit) never runs inside it, and the
 * due batch its slot seals is submitted from here. Canceled or not: the
 * failure is decided (and destroy waits for the batch before it stops the
 * timer, so it is never canceled in practice). */
static void fail_due(void *arg, uint64_t tag, bool canceled)
{
    (void)tag;
    (void)canceled;
    sbatch *sb = arg;
    fail_batch(sb, SLUICE_BATCH_ABANDONED, (int)sb->handed_back);
}

/* The pool handed a queued batch back: on the pool's on_abandon, where
 * nothing may block or call the pool. The batch fails on the timer thread
 * (fail_due); only if the timer cannot take it (no memory, or its thread
 * cannot start) does it fail here, with the due batch's submit handled as
 * fail_batch_in says. */
static void batch_abandoned(const sluice_abandoned *task)
{
    sbatch *sb = task->arg;
    if (task->reason == SLUICE_ABANDON_DRAIN || task->reason == SLUICE_ABANDON_DESTROY) {
        atomic_store_explicit(&sb->b->pool_closed, true, memory_order_release);
    }
    sb->handed_back = task->reason;
    if (sluice__timer_add(sb->b->timer, 0, fail_due, sb, 0) != SLUICE_OK) {
        fail_batch_in(sb, SLUICE_BATCH_ABANDONED, (int)task->reason, task->reason);
    }
}

/* The timer: submit a batch sealed on the pool's on_abandon. Entries are
 * never canceled in practice (destroy waits for every batch, this one
 * included, before it stops the timer); if one were, it fails REFUSED. */
static void submit_deferred(void *arg, uint64_t tag, bool canceled)
{
    (void)tag;
    sbatch *sb = arg;
    if (canceled) {
        fail_batch(sb, SLUICE_BATCH_REFUSED, (int)SLUICE_ECLOSED);
        return;
    }
    submit_batch(sb->b, sb, true);
}

typedef struct guard {
    sbatch *sb;
    const sluice_batcher *saved_tls;
} guard;

static void batch_panicked(void *arg)
{
    guard *g = arg;
    tls_batcher = g->saved_tls;
    fail_batch(g->sb, SLUICE_BATCH_PANICKED, (int)SLUICE_ETASK);
}

static int batch_task(void *arg)
{
    sbatch *sb = arg;
    sluice_batcher *b = sb->b;
    guard g = {.sb = sb, .saved_tls = tls_batcher};
    bool guarded = sluice_cleanup_push(batch_panicked, &g) == SLUICE_OK;
    tls_batcher = b;
    int rc = b->batch_fn(sb->items, sb->n, b->user);
    tls_batcher = g.saved_tls;
    if (guarded) {
        sluice_cleanup_pop(false);
    }
    if (rc != 0) {
        fail_batch(sb, SLUICE_BATCH_FAILED, rc);
        return rc;
    }
    pthread_mutex_lock(&b->mu);
    b->st.delivered += sb->n;
    b->st.batches_ok++;
    sbatch *next = batch_end_locked(b);
    pthread_mutex_unlock(&b->mu);
    free(sb);
    if (next) {
        submit_batch(b, next, true);
    }
    return 0;
}

/* The timer: max_delay_ns after the first item of batch `gen`. */
static void time_due(void *arg, uint64_t gen, bool canceled)
{
    if (canceled) {
        return;
    }
    sluice_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    sbatch *sb = NULL;
    if (b->cur && b->cur_gen == gen) {
        sb = seal(b, SLUICE_FLUSH_TIME);
    }
    pthread_mutex_unlock(&b->mu);
    if (sb) {
        submit_batch(b, sb, true);
    }
}

/* ---- create ------------------------------------------------------------------------ */

sluice_err sluice_batcher_create(const sluice_batcher_config *cfg, sluice_batcher **out, char *errbuf,
                                 size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    if (!cfg->pool) {
        sluice__errf(errbuf, errlen, "pool: required (the pool batches run on)");
        return SLUICE_EINVAL;
    }
    if (cfg->max_items == 0 || cfg->max_items > SLUICE_BATCHER_MAX_ITEMS) {
        sluice__errf(errbuf, errlen, "max_items: must be 1..%u, got %zu", SLUICE_BATCHER_MAX_ITEMS,
                     cfg->max_items);
        return SLUICE_EINVAL;
    }
    if (cfg->max_delay_ns > MAX_DELAY_NS) {
        sluice__errf(errbuf, errlen, "max_delay_ns: must be <= 1 hour, got %llu ns",
                     (unsigned long long)cfg->max_delay_ns);
        return SLUICE_EINVAL;
    }
    if (!cfg->batch_fn) {
        sluice__errf(errbuf, errlen, "batch_fn: required");
        return SLUICE_EINVAL;
    }
    if (!cfg->failure_fn) {
        sluice__errf(errbuf, errlen, "failure_fn: required: a failed batch must go somewhere");
        return SLUICE_EINVAL;
    }
    sluice_pool_config pc;
    sluice_pool_config_get(cfg->pool, &pc);
    /* 0: the pool's workers, at most the maximum (a pool's K may be
     * anything up to UINT_MAX; only a value given is refused past it). */
    unsigned inflight =
        cfg->max_in_flight ? cfg->max_in_flight : (pc.workers < MAX_IN_FLIGHT ? pc.workers : MAX_IN_FLIGHT);
    if (inflight == 0 || inflight > MAX_IN_FLIGHT) {
        sluice__errf(errbuf, errlen, "max_in_flight: must be <= %u, got %u", MAX_IN_FLIGHT,
                     cfg->max_in_flight);
        return SLUICE_EINVAL;
    }
    sluice_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(b->name, sizeof b->name, cfg->name, "batcher", errbuf, errlen);
    if (err) {
        free(b);
        return err;
    }
    /* Size buckets: as given, or 1, 2, 5, 10, 20, 50, ... up to max_items. */
    if (cfg->size_buckets && cfg->size_bucket_count) {
        if (cfg->size_bucket_count > SLUICE_HIST_MAX_BUCKETS) {
            sluice__errf(errbuf, errlen, "size_buckets: at most %d, got %zu", SLUICE_HIST_MAX_BUCKETS,
                         cfg->size_bucket_count);
            free(b);
            return SLUICE_EINVAL;
        }
        for (size_t i = 0; i < cfg->size_bucket_count; i++) {
            double v = cfg->size_buckets[i];
            if (!(v > 0) || (i > 0 && v <= cfg->size_buckets[i - 1])) {
                sluice__errf(errbuf, errlen, "size_buckets: must be > 0 and strictly increasing (index %zu)",
                             i);
                free(b);
                return SLUICE_EINVAL;
            }
            b->bounds[i] = v;
        }
        b->nbounds = cfg->size_bucket_count;
    } else {
        static const double steps[3] = {1, 2, 5};
        for (double scale = 1; b->nbounds < SLUICE_HIST_MAX_BUCKETS; scale *= 10) {
            for (int s = 0; s < 3 && b->nbounds < SLUICE_HIST_MAX_BUCKETS; s++) {
                double v = steps[s] * scale;
                b->bounds[b->nbounds++] = v < (double)cfg->max_items ? v : (double)cfg->max_items;
                if (v >= (double)cfg->max_items) {
                    goto bounds_done;
                }
            }
        }
    bounds_done:;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0 || pthread_mutex_init(&b->drain_mu, NULL) != 0 ||
        sluice__cond_init(&b->cv) != 0) {
        free(b);
        return SLUICE_ENOMEM;
    }
    b->pool = cfg->pool;
    b->max_items = cfg->max_items;
    b->max_delay_ns = cfg->max_delay_ns;
    b->max_in_flight = inflight;
    b->add_timeout_ns = cfg->add_timeout_ns;
    b->batch_fn = cfg->batch_fn;
    b->failure_fn = cfg->failure_fn;
    b->user = cfg->user;
    b->clock = cfg->clock ? cfg->clock : sluice_pool_clock(cfg->pool);
    /* The timer flushes by time and submits batches sealed on the pool's
     * on_abandon; its thread starts on first use. */
    if ((err = sluice__timer_create(b->clock, b->name, &b->timer)) != SLUICE_OK) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->drain_mu);
        free(b);
        return err;
    }
    *out = b;
    return SLUICE_OK;
}

/* ---- add / flush ------------------------------------------------------------------ */

static sluice_err add(sluice_batcher *b, void *item, bool may_wait)
{
    if (!b) {
        return SLUICE_EINVAL;
    }
    sluice_err err = SLUICE_OK;
    bool waited = false;
    uint64_t deadline = 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->closed) {
            err = SLUICE_ECLOSED;
            goto out;
        }
        if (!b->cur || b->cur->n < b->max_items) {
            break;
        }
        /* Full and due: wait for a batch to end. */
        if (!may_wait) {
            err = SLUICE_EFULL;
            goto out;
        }
        if (tls_batcher == b) {
            err = SLUICE_EDEADLK;
            goto out;
        }
        if (!waited) {
            waited = true;
            b->waiting++;
            if (b->add_timeout_ns) {
                deadline = sluice__add_sat(sluice_clock_now(b->clock), b->add_timeout_ns);
            }
        } else if (sluice__deadline_passed(sluice_clock_now(b->clock), deadline)) {
            err = SLUICE_ETIMEDOUT;
            goto out;
        }
        sluice__wait_until(b->clock, &b->cv, &b->mu, deadline);
    }
    if (!b->cur) {
        b->cur = malloc(sizeof(sbatch) + b->max_items * sizeof(void *));
        if (!b->cur) {
            err = SLUICE_ENOMEM;
            goto out;
        }
        b->cur->b = b;
        b->cur->n = 0;
    }
    if (b->cur->n == 0 && b->max_delay_ns) {
        uint64_t due = sluice__add_sat(sluice_clock_now(b->clock), b->max_delay_ns);
        err = sluice__timer_add(b->timer, due, time_due, b, b->cur_gen);
        if (err) {
            goto out; /* no time limit could be set: refuse rather than hold it for ever */
        }
    }
    b->cur->items[b->cur->n++] = item;
    b->st.added++;
    sbatch *sb = b->cur->n == b->max_items ? seal(b, SLUICE_FLUSH_SIZE) : NULL;
    if (waited) {
        b->waiting--;
    }
    pthread_mutex_unlock(&b->mu);
    if (sb) {
        /* A worker of the pool must not block on it; other threads, try_add
         * too, submit as the pool's submit does: refusing a batch sealed by
         * try_add whenever the pool was briefly full sent its items to
         * failure_fn while the add said OK (3d7cc73, reverted). */
        submit_batch(b, sb, sluice_task_pool() == b->pool);
    }
    return SLUICE_OK;

out:
    if (err != SLUICE_ECLOSED) {
        b->st.rejected++;
    }
    if (waited) {
        b->waiting--;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return err;
}

sluice_err sluice_batcher_add(sluice_batcher *b, void *item)
{
    return add(b, item, true);
}

sluice_err sluice_batcher_try_add(sluice_batcher *b, void *item)
{
    return add(b, item, false);
}

sluice_err sluice_batcher_flush(sluice_batcher *b)
{
    if (!b) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    sbatch *sb = seal(b, SLUICE_FLUSH_DRAIN);
    pthread_mutex_unlock(&b->mu);
    if (sb) {
        submit_batch(b, sb, sluice_task_pool() == b->pool);
    }
    return SLUICE_OK;
}

/* ---- drain / destroy -------------------------------------------------------------- */

sluice_err sluice_batcher_drain(sluice_batcher *b, uint64_t timeout_ns, sluice_batcher_drain_report *report)
{
    sluice_batcher_drain_report scratch;
    if (!report) {
        report = &scratch;
    }
    memset(report, 0, sizeof *report);
    if (!b) {
        return SLUICE_EINVAL;
    }
    if (tls_batcher == b) {
        return SLUICE_EDEADLK;
    }
    pthread_mutex_lock(&b->drain_mu);
    pthread_mutex_lock(&b->mu);
    if (b->drained) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_unlock(&b->drain_mu);
        return SLUICE_OK;
    }
    b->closed = true;
    pthread_cond_broadcast(&b->cv);
    uint64_t ended0 = b->st.batches_ok + b->st.batches_failed;
    uint64_t deadline = timeout_ns ? sluice__add_sat(sluice_clock_now(b->clock), timeout_ns) : 0;
    sbatch *sb = seal(b, SLUICE_FLUSH_DRAIN);
    pthread_mutex_unlock(&b->mu);
    if (sb) {
        /* Waiting for space in a full pool ends at the drain's deadline
         * too (the pool then refuses the batch: REFUSED). */
        submit_batch_until(b, sb, sluice_task_pool() == b->pool, deadline);
    }
    pthread_mutex_lock(&b->mu);
    bool timed_out = false;
    for (;;) {
        if (b->in_flight == 0 && (!b->cur || b->cur->n == 0)) {
            break;
        }
        if (sluice__deadline_passed(sluice_clock_now(b->clock), deadline)) {
            timed_out = true;
            break;
        }
        sluice__wait_until(b->clock, &b->cv, &b->mu, deadline);
    }
    sbatch *unsent = NULL;
    if (b->cur && b->cur->n > 0) {
        unsent = b->cur;
        b->cur = NULL;
        b->cur_gen++;
        b->seal_due = false;
    }
    report->batches = b->st.batches_ok + b->st.batches_failed - ended0;
    report->in_flight = b->in_flight;
    report->timed_out = timed_out;
    report->items_unsent = unsent ? unsent->n : 0;
    b->drained = true;
    pthread_mutex_unlock(&b->mu);
    if (unsent) {
        b->failure_fn(unsent->items, unsent->n, (int)SLUICE_ETIMEDOUT, SLUICE_BATCH_UNSENT, b->user);
        pthread_mutex_lock(&b->mu);
        b->st.failed_items += unsent->n;
        b->st.batches_failed++;
        b->st.failures[SLUICE_BATCH_UNSENT]++;
        pthread_mutex_unlock(&b->mu);
    }
    free(unsent);
    pthread_mutex_unlock(&b->drain_mu);
    return timed_out ? SLUICE_ETIMEDOUT : SLUICE_OK;
}

void sluice_batcher_destroy(sluice_batcher *b)
{
    if (!b) {
        return;
    }
    sluice_batcher_drain(b, 0, NULL);
    pthread_mutex_lock(&b->mu);
    while (b->in_flight > 0 || b->waiting > 0) {
        sluice__wait_until(NULL, &b->cv, &b->mu, 0);
    }
    pthread_mutex_unlock(&b->mu);
    sluice__timer_destroy(b->timer); /* pending: time entries (canceled, ignored); no batch is left */
    free(b->cur);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->drain_mu);
    free(b);
}

/* ---- stats ------------------------------------------------------------------------ */

void sluice_batcher_stats_get(sluice_batcher *b, sluice_batcher_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!b) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    out->pending_items = b->cur ? b->cur->n : 0;
    out->in_flight = b->in_flight;
    out->waiting = b->waiting;
    out->closed = b->closed;
    pthread_mutex_unlock(&b->mu);
}

void sluice_batcher_size_histogram(sluice_batcher *b, sluice_histogram *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!b) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    out->bucket_count = b->nbounds;
    memcpy(out->bounds, b->bounds, b->nbounds * sizeof b->bounds[0]);
    memcpy(out->counts, b->hist, (b->nbounds + 1) * sizeof b->hist[0]);
    out->count = b->hist_count;
    out->sum_seconds = (double)b->hist_sum; /* items, not seconds: the histogram's unit */
    pthread_mutex_unlock(&b->mu);
}

const char *sluice_batcher_name(const sluice_batcher *b)
{
    return b ? b->name : "";
}
