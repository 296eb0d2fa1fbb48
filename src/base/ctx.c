/*
 * src/base/ctx.c - contexts: a deadline and a cancellation flag, chained.
 *
 * Purpose. A sluice_ctx says "stop caring after T, or when told". The pool
 * reads it on its hot paths (a retain at submit, one sluice_ctx_err when a
 * worker picks the task up, a release when the task ends), so checking a
 * context must cost next to nothing.
 *
 * Design.
 *  - `done` is the whole fast path: 0 while live, else the cause (a
 *    sluice_err). sluice_ctx_err() is one relaxed load of it and, only when
 *    the context has a deadline, one clock read. The relaxed load is enough
 *    because the cause *is* the value: no other data is published with it.
 *  - `deadline_ns` is the effective deadline, the earliest of the context's
 *    own and its parent's, computed once at creation (a parent's deadline
 *    never changes), so a child never walks its ancestors to check time.
 *    Deadlines are observed lazily: there is no timer thread. The first
 *    sluice_ctx_err/sluice_ctx_wait that sees the deadline passed cancels
 *    the context (and the highest ancestor whose own deadline has passed)
 *    with SLUICE_ETIMEDOUT, running the callbacks on that thread.
 *  - Chaining. A child holds a reference to its parent and sits in the
 *    parent's intrusive `children` list (guarded by the parent's mu). The
 *    parent holds no reference to its children: a child that dies unlinks
 *    itself. Cancelling walks the children with "retain if not already
 *    dying" so that a child in the middle of being freed is skipped safely.
 *  - Callbacks run once, outside every lock, on the cancelling thread, in
 *    registration order. The firing thread pops them one at a time under
 *    mu and publishes which one is running (`running_id`), so that
 *    sluice_ctx_remove_cancel() can give a C-friendly guarantee: when it
 *    returns, the callback is neither pending nor running, and its argument
 *    may be freed (it waits for a callback running on another thread).
 *
 * Ordering guarantees.
 *  1. `done` is written once, under mu, from 0 to the cause. Later cancels
 *     see it set under the same mu and do nothing.
 *  2. When any callback of context X runs, X and all of X's descendants are
 *     already done (descendants are cancelled before X's own callbacks run).
 *  3. A child created concurrently with its parent's cancel is either
 *     linked before the parent sets `done` (then the cascade reaches it)
 *     or sees `done` set under the parent's mu and is born cancelled with
 *     the parent's cause. No child is missed.
 *  4. When sluice_ctx_cancel() returns (for the call that did cancel), the
 *     whole subtree is done and every callback in it has run.
 *
 * Lock order: a thread holds at most one context mutex at a time, except
 * that a dying child takes its parent's mu after having released its own
 * (so: never two at once). No lock is held while a callback runs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "sluice/ctx.h"
#include "base/timing.h"

typedef struct cb_node {
    struct cb_node *next;
    uint64_t id;
    sluice_ctx_cancel_fn fn;
    void *arg;
} cb_node;

struct sluice_ctx {
    /* Hot and immutable after create except `done` (see ordering 1). */
    _Atomic int done;          /* 0 = live, else the cause */
    uint64_t deadline_ns;      /* effective deadline, 0 = none */
    const sluice_clock *clock; /* never NULL */
    sluice_ctx *parent;        /* retained; NULL for a root */
    _Atomic size_t refs;

    /* Guarded by parent->mu: this context's place in its parent's list. */
    sluice_ctx *sib_prev, *sib_next;
    bool linked;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* broadcast when done is set and when a callback ends */
    cb_node *cbs, *cbs_tail; /* registered and not yet started, in order */
    sluice_ctx *children;    /* live children (see sib_*) */
    uint64_t next_id;
    uint64_t running_id; /* the callback running now, 0 = none */
    pthread_t runner;    /* the thread running it (valid when running_id) */
};

/* Take a reference unless the count already reached zero (the context is
 * being freed by another thread). */
static bool try_retain(sluice_ctx *c)
{
    size_t n = atomic_load_explicit(&c->refs, memory_order_relaxed);
    while (n != 0) {
        if (atomic_compare_exchange_weak_explicit(&c->refs, &n, n + 1, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

sluice_err sluice_ctx_create(sluice_ctx **out, sluice_ctx *parent, uint64_t deadline_ns,
                             const sluice_clock *clock)
{
    if (!out) {
        return SLUICE_EINVAL;
    }
    const sluice_clock *clk = clock ? clock : (parent ? parent->clock : sluice_clock_system());
    uint64_t eff = deadline_ns;
    if (parent && parent->deadline_ns) {
        /* Deadlines on two different time scales cannot be compared. */
        if (!sluice__same_clock(clk, parent->clock)) {
            return SLUICE_EINVAL;
        }
        eff = sluice__min_deadline(eff, parent->deadline_ns);
    }
    sluice_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        return SLUICE_ENOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&c->cv) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return SLUICE_ENOMEM;
    }
    atomic_init(&c->done, 0);
    atomic_init(&c->refs, 1);
    c->deadline_ns = eff;
    c->clock = clk;
    c->next_id = 1;
    if (parent) {
        sluice_ctx_retain(parent);
        c->parent = parent;
        pthread_mutex_lock(&parent->mu);
        int pd = atomic_load_explicit(&parent->done, memory_order_relaxed);
        if (pd) {
            /* Ordering 3: born cancelled; nothing registered yet to run. */
            atomic_store_explicit(&c->done, pd, memory_order_relaxed);
        } else {
            c->sib_prev = NULL;
            c->sib_next = parent->children;
            if (parent->children) {
                parent->children->sib_prev = c;
            }
            parent->children = c;
            c->linked = true;
        }
        pthread_mutex_unlock(&parent->mu);
    }
    *out = c;
    return SLUICE_OK;
}

sluice_err sluice_ctx_with_timeout(sluice_ctx **out, sluice_ctx *parent, uint64_t timeout_ns,
                                   const sluice_clock *clock)
{
    if (!out) {
        return SLUICE_EINVAL;
    }
    const sluice_clock *clk = clock ? clock : (parent ? parent->clock : sluice_clock_system());
    uint64_t deadline = sluice__add_sat(sluice_clock_now(clk), timeout_ns);
    if (deadline == 0) {
        deadline = 1; /* a fake clock at 0 with no timeout: 0 would mean "none" */
    }
    sluice_err err = sluice_ctx_create(out, parent, deadline, clk);
    if (err == SLUICE_OK && timeout_ns == 0) {
        sluice_ctx_cancel(*out, SLUICE_ETIMEDOUT);
    }
    return err;
}

void sluice_ctx_retain(sluice_ctx *ctx)
{
    if (ctx) {
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    }
}

void sluice_ctx_release(sluice_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    /* acq_rel: the thread that frees sees every write made under earlier
     * references (pairs with the other releasers' fetch_sub). */
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    sluice_ctx *parent = ctx->parent;
    if (parent) {
        pthread_mutex_lock(&parent->mu);
        if (ctx->linked) {
            if (ctx->sib_prev) {
                ctx->sib_prev->sib_next = ctx->sib_next;
            } else {
                parent->children = ctx->sib_next;
            }
            if (ctx->sib_next) {
                ctx->sib_next->sib_prev = ctx->sib_prev;
            }
            ctx->linked = false;
        }
        pthread_mutex_unlock(&parent->mu);
    }
    /* Callbacks of a context that was never cancelled never run. */
    cb_node *n = ctx->cbs;
    while (n) {
        cb_node *next = n->next;
        free(n);
        n = next;
    }
    pthread_cond_destroy(&ctx->cv);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    sluice_ctx_release(parent);
}

void sluice_ctx_cancel(sluice_ctx *ctx, sluice_err cause)
{
    if (!ctx) {
        return;
    }
    if (cause == SLUICE_OK) {
        cause = SLUICE_ECANCELED;
    }
    pthread_mutex_lock(&ctx->mu);
    if (atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
        pthread_mutex_unlock(&ctx->mu);
        return;
    }
    atomic_store_explicit(&ctx->done, (int)cause, memory_order_relaxed);
    pthread_cond_broadcast(&ctx->cv);

    /* Descendants first (ordering 2). No child can be added now. */
    sluice_ctx *ch;
    while ((ch = ctx->children) != NULL) {
        ctx->children = ch->sib_next;
        if (ctx->children) {
            ctx->children->sib_prev = NULL;
        }
        ch->linked = false;
        ch->sib_prev = ch->sib_next = NULL;
        if (!try_retain(ch)) {
            continue; /* dying: it will see linked == false */
        }
        pthread_mutex_unlock(&ctx->mu);
        sluice_ctx_cancel(ch, cause);
        sluice_ctx_release(ch);
        pthread_mutex_lock(&ctx->mu);
    }

    /* Then our own callbacks, one at a time, no lock held while each runs. */
    pthread_t self = pthread_self();
    cb_node *n;
    while ((n = ctx->cbs) != NULL) {
        ctx->cbs = n->next;
        if (!ctx->cbs) {
            ctx->cbs_tail = NULL;
        }
        ctx->running_id = n->id;
        ctx->runner = self;
        pthread_mutex_unlock(&ctx->mu);
        n->fn(ctx, cause, n->arg);
        free(n);
        pthread_mutex_lock(&ctx->mu);
        ctx->running_id = 0;
        pthread_cond_broadcast(&ctx->cv); /* remove_cancel may wait for it */
    }
    pthread_mutex_unlock(&ctx->mu);
}

/* The slow path of sluice_ctx_err: ctx's effective deadline has passed.
 * Cancel the highest ancestor whose deadline has passed too, so that its
 * other descendants and callbacks learn of it now rather than later. */
static sluice_err expire(sluice_ctx *ctx)
{
    uint64_t now = sluice_clock_now(ctx->clock);
    sluice_ctx *top = ctx;
    /* Effective deadlines never decrease going up the chain, so the first
     * ancestor that has not expired ends the walk. */
    for (sluice_ctx *a = ctx->parent; a; a = a->parent) {
        if (!a->deadline_ns || !sluice__same_clock(a->clock, ctx->clock) ||
            !sluice__deadline_passed(now, a->deadline_ns)) {
            break;
        }
        top = a;
    }
    sluice_ctx_cancel(top, SLUICE_ETIMEDOUT);
    if (top != ctx) {
        sluice_ctx_cancel(ctx, SLUICE_ETIMEDOUT); /* normally a no-op by now */
    }
    return (sluice_err)atomic_load_explicit(&ctx->done, memory_order_relaxed);
}

sluice_err sluice_ctx_err(sluice_ctx *ctx)
{
    if (!ctx) {
        return SLUICE_OK;
    }
    int d = atomic_load_explicit(&ctx->done, memory_order_relaxed);
    if (d) {
        return (sluice_err)d;
    }
    if (!sluice__deadline_passed(sluice_clock_now(ctx->clock), ctx->deadline_ns)) {
        return SLUICE_OK;
    }
    return expire(ctx);
}

sluice_err sluice__ctx_peek(const sluice_ctx *ctx)
{
    return ctx ? (sluice_err)atomic_load_explicit(&ctx->done, memory_order_relaxed) : SLUICE_OK;
}

bool sluice_ctx_done(sluice_ctx *ctx)
{
    return sluice_ctx_err(ctx) != SLUICE_OK;
}

uint64_t sluice_ctx_deadline(const sluice_ctx *ctx)
{
    return ctx ? ctx->deadline_ns : 0;
}

const sluice_clock *sluice_ctx_clock(const sluice_ctx *ctx)
{
    return ctx ? ctx->clock : sluice_clock_system();
}

sluice_err sluice_ctx_on_cancel(sluice_ctx *ctx, sluice_ctx_cancel_fn fn, void *arg, uint64_t *id_out)
{
    if (!ctx || !fn) {
        return SLUICE_EINVAL;
    }
    /* Observe a passed deadline first, so "already over" runs fn now. */
    sluice_ctx_err(ctx);
    cb_node *n = malloc(sizeof *n);
    if (!n) {
        return SLUICE_ENOMEM;
    }
    pthread_mutex_lock(&ctx->mu);
    uint64_t id = ctx->next_id++;
    if (id_out) {
        *id_out = id;
    }
    int d = atomic_load_explicit(&ctx->done, memory_order_relaxed);
    if (d) {
        pthread_mutex_unlock(&ctx->mu);
        free(n);
        fn(ctx, (sluice_err)d, arg);
        return SLUICE_OK;
    }
    n->next = NULL;
    n->id = id;
    n->fn = fn;
    n->arg = arg;
    if (ctx->cbs_tail) {
        ctx->cbs_tail->next = n;
    } else {
        ctx->cbs = n;
    }
    ctx->cbs_tail = n;
    pthread_mutex_unlock(&ctx->mu);
    return SLUICE_OK;
}

bool sluice_ctx_remove_cancel(sluice_ctx *ctx, uint64_t id)
{
    if (!ctx || id == 0) {
        return false;
    }
    pthread_mutex_lock(&ctx->mu);
    cb_node *prev = NULL;
    for (cb_node *n = ctx->cbs; n; prev = n, n = n->next) {
        if (n->id != id) {
            continue;
        }
        if (prev) {
            prev->next = n->next;
        } else {
            ctx->cbs = n->next;
        }
        if (ctx->cbs_tail == n) {
            ctx->cbs_tail = prev;
        }
        pthread_mutex_unlock(&ctx->mu);
        free(n);
        return true;
    }
    /* Not pending: it ran, or it is running. Wait for a run on another
     * thread to end, so the caller may free the callback's argument. */
    pthread_t self = pthread_self();
    while (ctx->running_id == id && !pthread_equal(ctx->runner, self)) {
        pthread_cond_wait(&ctx->cv, &ctx->mu);
    }
    pthread_mutex_unlock(&ctx->mu);
    return false;
}

sluice_err sluice_ctx_wait(sluice_ctx *ctx, uint64_t until_ns)
{
    if (!ctx) {
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice_ctx_err(ctx);
    if (err) {
        return err;
    }
    uint64_t limit = sluice__min_deadline(until_ns, ctx->deadline_ns);
    pthread_mutex_lock(&ctx->mu);
    for (;;) {
        int d = atomic_load_explicit(&ctx->done, memory_order_relaxed);
        if (d) {
            pthread_mutex_unlock(&ctx->mu);
            return (sluice_err)d;
        }
        uint64_t now = sluice_clock_now(ctx->clock);
        if (sluice__deadline_passed(now, ctx->deadline_ns)) {
            pthread_mutex_unlock(&ctx->mu);
            return expire(ctx);
        }
        if (until_ns && now >= until_ns) {
            pthread_mutex_unlock(&ctx->mu);
            return SLUICE_OK;
        }
        sluice__wait_until(ctx->clock, &ctx->cv, &ctx->mu, limit);
    }
}
