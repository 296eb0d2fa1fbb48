/*
 * src/sync/sem.c - a weighted semaphore with strict FIFO fairness.
 *
 * Purpose. Bound a shared resource measured in units (bytes, connections)
 * across threads that do not share a pool, fairly: in arrival order, with
 * no starvation of large requests.
 *
 * Design. One mutex guards everything. The waiters form an intrusive FIFO
 * list of stack-allocated nodes, each with its own condition variable, so
 * a release wakes exactly the waiters it serves and no thundering herd.
 * The rules are those of Go's golang.org/x/sync/semaphore:
 *   - acquire takes the fast path only when the units are free AND the
 *     queue is empty; otherwise it queues at the tail (no barging);
 *   - serve() grants from the head while the head fits; it stops at the
 *     first waiter that does not fit, even if a later, smaller one would
 *     (head-of-line blocking is what protects large acquirers);
 *   - a request larger than the capacity is refused at once, because it
 *     would sit at the head forever and block everyone behind it;
 *   - a waiter that leaves (ctx done, deadline, close) unlinks itself and
 *     calls serve(), so the waiters behind a departed head proceed.
 * A grant and a cancel can race; the grant wins: the waiter checks `ready`
 * before anything else and, once granted, returns SLUICE_OK.
 *
 * Live capacity. sluice_sem_set_capacity changes the capacity under the
 * mutex. Growing serves the queue. Shrinking takes nothing back: units in
 * use may exceed the new capacity until they are released (every "fits"
 * test is written so that cur > capacity never wraps), and queued requests
 * larger than the new capacity are refused with SLUICE_EOVERFLOW (they
 * could never be served and would block everyone behind them), as a new
 * one would be.
 *
 * Contexts. A waiter with a context registers a cancel callback that takes
 * the semaphore's mutex and signals its node's condition variable, so a
 * cancel wakes it at once. The callback is registered and removed with the
 * mutex released (a callback may run on the registering thread), and
 * sluice_ctx_remove_cancel() waits for a callback in flight, so the node
 * (on the waiter's stack) outlives every callback that points at it.
 * Deadlines are timed waits on the system clock, or polls every
 * SLUICE_CLOCK_POLL_NS when a fake clock is involved.
 *
 * Ordering guarantees: grants happen in queue order; a waiter's grant is
 * published under the mutex before its condition variable is signalled.
 *
 * Lock order: sem->mu only; ctx->mu is taken by sluice_ctx_* calls made
 * with sem->mu released; the wake callback takes sem->mu with no ctx lock
 * held (callbacks run outside context locks). So the two never nest.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sem.h"
#include "sync/sync_internal.h"

typedef struct waiter {
    struct waiter *prev, *next;
    struct sluice_sem *sem;
    uint64_t n;
    uint64_t start_ns;
    bool ready;   /* granted by serve(); guarded by sem->mu */
    bool refused; /* the capacity shrank below n; guarded by sem->mu */
    pthread_cond_t cv;
} waiter;

struct sluice_sem {
    /* Immutable after create. */
    char name[SLUICE_SEM_NAME_MAX + 1];
    const sluice_clock *clock;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    uint64_t capacity;      /* sluice_sem_set_capacity changes it */
    pthread_cond_t cv_gone; /* destroy waits for inside == 0 */
    uint64_t cur;           /* units held */
    waiter *head, *tail;
    unsigned nwaiters;
    /* The units the waiters ask for, exactly: a 128-bit sum as a low word
     * and a carry count (two waiters of UINT64_MAX units on a semaphore of
     * that capacity wrapped a plain uint64_t to UINT64_MAX - 1, and three
     * to 1). The gauge saturates at UINT64_MAX while the carry is set. */
    uint64_t waiting_units;
    unsigned waiting_units_carry;
    unsigned inside; /* threads in the slow path of acquire */
    bool closed;
    sluice_sem_stats st; /* counters and high-water marks */
    sluice__sync_hist hist;
};

void sluice_sem_config_init(sluice_sem_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_sem_create(const sluice_sem_config *cfg, sluice_sem **out, char *errbuf, size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    if (cfg->capacity == 0) {
        sluice__errf(errbuf, errlen, "capacity: must be > 0");
        return SLUICE_EINVAL;
    }
    sluice_sem *s = calloc(1, sizeof *s);
    if (!s) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(s->name, sizeof s->name, cfg->name, "sem", errbuf, errlen);
    if (!err) {
        err = sluice__sync_hist_init(&s->hist, cfg->histogram_buckets, cfg->histogram_bucket_count,
                                     "histogram_buckets", errbuf, errlen);
    }
    if (err) {
        free(s);
        return err;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&s->cv_gone) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return SLUICE_ENOMEM;
    }
    s->capacity = cfg->capacity;
    s->clock = cfg->clock ? cfg->clock : sluice_clock_system();
    *out = s;
    return SLUICE_OK;
}

static void unlink_waiter(sluice_sem *s, waiter *w)
{
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        s->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        s->tail = w->prev;
    }
    w->prev = w->next = NULL;
    s->nwaiters--;
    if (s->waiting_units < w->n) {
        s->waiting_units_carry--; /* borrow */
    }
    s->waiting_units -= w->n;
}

static void note_grant(sluice_sem *s, uint64_t wait_ns)
{
    s->st.acquired++;
    if (s->cur > s->st.in_use_hwm) {
        s->st.in_use_hwm = s->cur;
    }
    sluice__sync_hist_observe(&s->hist, wait_ns);
}

/* n more units fit (mu held); held units may exceed a shrunk capacity. */
static bool fits(const sluice_sem *s, uint64_t n)
{
    return s->cur <= s->capacity && s->capacity - s->cur >= n;
}

/* Grant from the head while the head fits (mu held). */
static void serve(sluice_sem *s)
{
    uint64_t now = 0;
    waiter *w;
    while ((w = s->head) != NULL && fits(s, w->n)) {
        s->cur += w->n;
        unlink_waiter(s, w);
        w->ready = true;
        if (now == 0) {
            now = sluice_clock_now(s->clock);
        }
        s->st.waited++;
        note_grant(s, now > w->start_ns ? now - w->start_ns : 0);
        pthread_cond_signal(&w->cv);
    }
}

static void wake_cb(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    (void)cause;
    waiter *w = arg;
    pthread_mutex_lock(&w->sem->mu);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->sem->mu);
}

sluice_err sluice_sem_acquire_until(sluice_sem *s, uint64_t n, sluice_ctx *ctx, uint64_t deadline_ns)
{
    if (!s || n == 0) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return SLUICE_ECLOSED;
    }
    if (n > s->capacity) {
        s->st.oversize++;
        pthread_mutex_unlock(&s->mu);
        return SLUICE_EOVERFLOW;
    }
    sluice_err err = sluice__ctx_peek(ctx);
    if (!err && sluice__timed_out(s->clock, deadline_ns, ctx)) {
        err = SLUICE_ETIMEDOUT;
    }
    if (err) {
        if (err == SLUICE_ETIMEDOUT) {
            s->st.timeouts++;
        } else {
            s->st.canceled++;
        }
        pthread_mutex_unlock(&s->mu);
        sluice_ctx_err(ctx); /* observe a passed ctx deadline, outside our lock */
        return err;
    }
    if (!s->head && fits(s, n)) {
        s->cur += n;
        note_grant(s, 0);
        pthread_mutex_unlock(&s->mu);
        return SLUICE_OK;
    }

    /* Slow path: queue at the tail. */
    waiter w = {.sem = s, .n = n, .start_ns = sluice_clock_now(s->clock)};
    if (sluice__cond_init(&w.cv) != 0) {
        pthread_mutex_unlock(&s->mu);
        return SLUICE_ENOMEM;
    }
    w.prev = s->tail;
    if (s->tail) {
        s->tail->next = &w;
    } else {
        s->head = &w;
    }
    s->tail = &w;
    s->nwaiters++;
    s->waiting_units += n;
    if (s->waiting_units < n) {
        s->waiting_units_carry++; /* at most one per waiter: nwaiters bounds it */
    }
    s->inside++;
    if (s->nwaiters > s->st.waiters_hwm) {
        s->st.waiters_hwm = s->nwaiters;
    }

    uint64_t cb_id = 0;
    bool registered = false;
    if (ctx) {
        /* Registering may run wake_cb at once on this thread: unlock. */
        pthread_mutex_unlock(&s->mu);
        registered = sluice_ctx_on_cancel(ctx, wake_cb, &w, &cb_id) == SLUICE_OK;
        pthread_mutex_lock(&s->mu);
    }
    for (;;) {
        if (w.ready) {
            err = SLUICE_OK;
            break;
        }
        if (w.refused) { /* unlinked and counted by set_capacity */
            err = SLUICE_EOVERFLOW;
            break;
        }
        if (s->closed) {
            err = SLUICE_ECLOSED;
        } else if ((err = sluice__ctx_peek(ctx)) == SLUICE_OK &&
                   sluice__timed_out(s->clock, deadline_ns, ctx)) {
            err = SLUICE_ETIMEDOUT;
        }
        if (err) {
            unlink_waiter(s, &w);
            if (err == SLUICE_ETIMEDOUT) {
                s->st.timeouts++;
            } else if (err != SLUICE_ECLOSED) {
                s->st.canceled++;
            }
            serve(s); /* a departed head lets the ones behind it proceed */
            break;
        }
        sluice__wait_ctx(s->clock, deadline_ns, ctx, registered, &w.cv, &s->mu);
    }
    if (registered) {
        /* Waits for a wake_cb in flight, which needs s->mu: unlock. */
        pthread_mutex_unlock(&s->mu);
        sluice_ctx_remove_cancel(ctx, cb_id);
        pthread_mutex_lock(&s->mu);
    }
    if (--s->inside == 0 && s->closed) {
        pthread_cond_broadcast(&s->cv_gone);
    }
    pthread_mutex_unlock(&s->mu);
    /* From here on s may be freed by destroy. */
    pthread_cond_destroy(&w.cv);
    if (err && ctx) {
        sluice_ctx_err(ctx); /* observe a passed ctx deadline (runs callbacks) */
    }
    return err;
}

sluice_err sluice_sem_acquire(sluice_sem *sem, uint64_t n, sluice_ctx *ctx)
{
    return sluice_sem_acquire_until(sem, n, ctx, 0);
}

sluice_err sluice_sem_try_acquire(sluice_sem *s, uint64_t n)
{
    if (!s || n == 0) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    sluice_err err = SLUICE_OK;
    if (s->closed) {
        err = SLUICE_ECLOSED;
    } else if (n > s->capacity) {
        s->st.oversize++;
        err = SLUICE_EOVERFLOW;
    } else if (s->head || !fits(s, n)) {
        s->st.try_failed++;
        err = SLUICE_EAGAIN;
    } else {
        s->cur += n;
        note_grant(s, 0);
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

sluice_err sluice_sem_release(sluice_sem *s, uint64_t n)
{
    if (!s || n == 0) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    if (n > s->cur) {
        s->st.release_errors++;
        pthread_mutex_unlock(&s->mu);
        return SLUICE_EOVERFLOW;
    }
    s->cur -= n;
    serve(s);
    pthread_mutex_unlock(&s->mu);
    return SLUICE_OK;
}

sluice_err sluice_sem_set_capacity(sluice_sem *s, uint64_t capacity)
{
    if (!s || capacity == 0) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return SLUICE_ECLOSED;
    }
    s->capacity = capacity;
    /* Queued requests that can never fit now: refuse them (in place, so
     * the ones behind them keep their order). */
    waiter *w = s->head;
    while (w) {
        waiter *next = w->next;
        if (w->n > capacity) {
            unlink_waiter(s, w);
            w->refused = true;
            s->st.oversize++;
            pthread_cond_signal(&w->cv);
        }
        w = next;
    }
    serve(s);
    pthread_mutex_unlock(&s->mu);
    return SLUICE_OK;
}

void sluice_sem_close(sluice_sem *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    for (waiter *w = s->head; w; w = w->next) {
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void sluice_sem_destroy(sluice_sem *s)
{
    if (!s) {
        return;
    }
    sluice_sem_close(s);
    pthread_mutex_lock(&s->mu);
    while (s->inside > 0) {
        pthread_cond_wait(&s->cv_gone, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&s->cv_gone);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void sluice_sem_stats_get(sluice_sem *s, sluice_sem_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->capacity = s->capacity;
    out->in_use = s->cur;
    out->waiters = s->nwaiters;
    out->waiting_units = s->waiting_units_carry ? UINT64_MAX : s->waiting_units;
    out->closed = s->closed;
    pthread_mutex_unlock(&s->mu);
}

void sluice_sem_histogram_get(sluice_sem *s, sluice_histogram *out)
{
    if (!out) {
        return;
    }
    if (!s) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&s->mu);
    sluice__sync_hist_snapshot(&s->hist, out);
    pthread_mutex_unlock(&s->mu);
}

const char *sluice_sem_name(const sluice_sem *s)
{
    return s ? s->name : NULL;
}
