/*
 * src/sync/group.c - task groups (errgroup) on a pool.
 *
 * Purpose. Fan work out onto a pool with a bound on how much of it is in
 * flight, wait for all of it, and stop early on the first error; without
 * deadlocking when the waiting happens on the pool itself. The contract is
 * in sluice/group.h; this essay is about how.
 *
 * Design.
 *  - Every accepted task becomes a `gtask` on the group's pending FIFO and
 *    one pool task, the trampoline, submitted with the gtask as argument.
 *    A gtask is started by whoever CLAIMS it first under the group mutex:
 *    its own trampoline, or a helper (a waiting worker). The claim moves
 *    it from pending to running. A trampoline that finds its gtask already
 *    claimed just frees it: the helper copied fn/arg at claim time and
 *    never touches the gtask again, so the trampoline is always the one
 *    to free it (or run() is, when the pool refused the trampoline).
 *  - Helping. wait(), and a run() that must wait for a slot, check whether
 *    the caller is inside a task of the group's pool (sluice_task_pool()).
 *    If so they claim pending gtasks from the head and run them inline,
 *    then block only once nothing is pending. Everything still in flight
 *    is then running on other threads, so the wait ends. A task accepted
 *    while someone is blocked wakes them, so a waiter in the pool can
 *    help with work that a running task spawned after it blocked. This is what
 *    makes fan-out-and-wait on a K=1 pool finish. The trampolines of
 *    helped tasks stay in the pool queue as no-ops until a worker gets to
 *    them; they hold a reference on the group, so the group's memory
 *    outlives them (destroy only drops the creator's reference).
 *  - Panics. A task may sluice_panic. The trampoline pushes a cleanup
 *    handler (sluice_cleanup_push) around the task; on a panic the pool
 *    runs it before unwinding to the worker, and it records the panic
 *    (with the message the core already formatted in the task's frame),
 *    finishes the task's accounting and frees the trampoline's state,
 *    since the trampoline itself never resumes. A helped task runs nested
 *    in the waiting task's frame, where a panic would unwind the waiter
 *    too; so the helper's handler, after recording, siglongjmps back to
 *    the helper (a jump up the same stack, past sluice_panic's frames),
 *    and the waiting task carries on. Handlers run innermost first, so a
 *    helped task's own cleanup handlers still run before ours.
 *  - Errors. finish() maps the task's int to a sluice_err (0 ok, a
 *    sluice_err code as itself, anything else SLUICE_ETASK), keeps the
 *    first one, and cancels the group context with it after dropping the
 *    mutex. A trampoline or helper that claims a gtask after the context
 *    ended skips it.
 *  - The private pool (cfg.pool == NULL) is an ordinary sluice_pool whose
 *    abandon handler is sluice_group_abandoned and whose panic handler is
 *    silent (wait() reports panics); so "own threads" and "given pool"
 *    share every code path.
 *
 * Ordering guarantees: pending gtasks are started in FIFO order by
 * helpers; trampolines start in the pool's order. wait() returns only
 * after the last finish() (which happens-before it through the mutex).
 *
 * Lock order: g->mu only. It is never held while a task, a pool call or a
 * context call (cancel, err) runs.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "sluice/group.h"
#include "sluice/task.h"
#include "sync/sync_internal.h"

typedef struct gtask {
    struct gtask *prev, *next; /* pending list; guarded by g->mu */
    struct sluice_group *g;
    sluice_task_fn fn;
    void *arg;
    bool claimed; /* guarded by g->mu */
} gtask;

struct sluice_group {
    /* Immutable after create. */
    char name[SLUICE_GROUP_NAME_MAX + 1];
    unsigned limit;
    sluice_pool *pool;
    bool own_pool;
    sluice_ctx *ctx;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv_idle; /* pending + running reached 0 */
    pthread_cond_t cv_slot; /* a task finished: a slot may be free */
    gtask *head, *tail;
    unsigned pending, running;
    unsigned refs;    /* the creator + one per trampoline the pool holds */
    unsigned blocked; /* threads in a cond wait in run() or wait() */
    /* Of `running`, the group's own tasks blocked in run() for a slot,
     * asleep or helping (running a pending task inline on their thread,
     * which they wait for): when every running task is one of them and
     * nothing is pending, no slot can ever free (each waits for the
     * others), and the next one refuses. */
    unsigned own_blocked;
    bool waited;
    sluice_err first_err;
    int first_rc;
    bool first_panicked;
    char first_msg[SLUICE_GROUP_MESSAGE_MAX];
    sluice_group_stats st; /* counters */
};

/* The group whose task this thread is running (innermost), for EDEADLK. */
static _Thread_local const sluice_group *tls_group;

static int trampoline(void *arg);

void sluice_group_config_init(sluice_group_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

static void group_free(sluice_group *g)
{
    sluice_ctx_release(g->ctx);
    pthread_cond_destroy(&g->cv_slot);
    pthread_cond_destroy(&g->cv_idle);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static void group_unref(sluice_group *g)
{
    pthread_mutex_lock(&g->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) {
        group_free(g);
    }
}

static sluice_err map_rc(int rc)
{
    if (rc == 0) {
        return SLUICE_OK;
    }
    if (rc > 0 && rc < (int)SLUICE_ERR_COUNT_) {
        return (sluice_err)rc;
    }
    return SLUICE_ETASK;
}

/* Record the first error (mu held). Returns true when it is the first. */
static bool note_error(sluice_group *g, sluice_err err, int rc, bool panicked, const char *msg)
{
    if (!err || g->first_err) {
        return false;
    }
    g->first_err = err;
    g->first_rc = panicked ? 0 : rc;
    g->first_panicked = panicked;
    g->first_msg[0] = 0;
    if (msg) {
        size_t n = strnlen(msg, sizeof g->first_msg - 1);
        memcpy(g->first_msg, msg, n);
        g->first_msg[n] = 0;
    }
    return true;
}

static void wake_if_idle(sluice_group *g)
{
    if (g->pending + g->running == 0) {
        pthread_cond_broadcast(&g->cv_idle);
    }
    pthread_cond_broadcast(&g->cv_slot);
}

/* A claimed task ended: ran (rc / panicked) or was skipped. */
static void finish(sluice_group *g, int rc, bool panicked, bool skipped, const char *msg)
{
    sluice_err err = panicked ? SLUICE_ETASK : map_rc(rc);
    pthread_mutex_lock(&g->mu);
    g->running--;
    if (skipped) {
        g->st.skipped++;
        err = SLUICE_OK;
    } else if (panicked) {
        g->st.panicked++;
    } else if (rc == 0) {
        g->st.completed++;
    } else {
        g->st.failed++;
    }
    bool first = note_error(g, err, rc, panicked, msg);
    wake_if_idle(g);
    pthread_mutex_unlock(&g->mu);
    if (first) {
        sluice_ctx_cancel(g->ctx, err);
    }
}

/* Claim t if nobody has (mu held). */
static bool claim_locked(sluice_group *g, gtask *t)
{
    SLUICE__ASSERT_HELD(&g->mu);
    if (t->claimed) {
        return false;
    }
    t->claimed = true;
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        g->head = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    } else {
        g->tail = t->prev;
    }
    t->prev = t->next = NULL;
    g->pending--;
    g->running++;
    return true;
}

/* ---- running a task, with panics caught ------------------------------------- */

typedef struct guard {
    sluice_group *g;
    gtask *t;           /* trampoline mode: freed by the handler on a panic */
    sigjmp_buf *escape; /* helper mode: where the handler jumps after recording */
    const sluice_group *saved_tls;
} guard;

static void on_panic(void *arg)
{
    guard *gd = arg;
    tls_group = gd->saved_tls;
    const char *msg = sluice_task_panic_message();
    if (!msg) {
        msg = "";
    }
    finish(gd->g, 0, true, false, msg);
    if (gd->escape) {
        siglongjmp(*gd->escape, 1); /* back to help_one; the waiting task goes on */
    }
    /* Trampoline mode: the pool unwinds to its worker after we return. */
    sluice_group *g = gd->g;
    free(gd->t);
    group_unref(g);
}

static int trampoline(void *arg)
{
    gtask *t = arg;
    sluice_group *g = t->g;
    pthread_mutex_lock(&g->mu);
    bool mine = claim_locked(g, t);
    pthread_mutex_unlock(&g->mu);
    if (mine) {
        if (sluice_ctx_err(g->ctx) != SLUICE_OK) {
            finish(g, 0, false, true, NULL);
        } else {
            guard gd = {.g = g, .t = t, .saved_tls = tls_group};
            bool guarded = sluice_cleanup_push(on_panic, &gd) == SLUICE_OK;
            tls_group = g;
            int rc = t->fn(t->arg);
            tls_group = gd.saved_tls;
            if (guarded) {
                sluice_cleanup_pop(false);
            }
            finish(g, rc, false, false, NULL);
        }
    }
    free(t);
    group_unref(g);
    return 0;
}

/*
 * Claim the head pending task and run it here, nested in the calling task.
 * Returns false when there was nothing to claim (or no cleanup slot to
 * guard it with: then we do not help, we only wait).
 */
static __attribute__((noinline)) bool help_one(sluice_group *g)
{
    sigjmp_buf escape;
    guard gd = {.g = g, .escape = &escape, .saved_tls = tls_group};
    if (sluice_cleanup_push(on_panic, &gd) != SLUICE_OK) {
        return false;
    }
    pthread_mutex_lock(&g->mu);
    gtask *t = g->head;
    if (!t) {
        pthread_mutex_unlock(&g->mu);
        sluice_cleanup_pop(false);
        return false;
    }
    claim_locked(g, t);
    g->st.helped++;
    sluice_task_fn fn = t->fn;
    void *farg = t->arg;
    pthread_mutex_unlock(&g->mu);
    /* t now belongs to its trampoline: not touched again here. */
    if (sluice_ctx_err(g->ctx) != SLUICE_OK) {
        sluice_cleanup_pop(false);
        finish(g, 0, false, true, NULL);
        return true;
    }
    if (sigsetjmp(escape, 0) == 0) {
        tls_group = g;
        int rc = fn(farg);
        tls_group = gd.saved_tls;
        sluice_cleanup_pop(false);
        finish(g, rc, false, false, NULL);
    }
    /* else: it panicked; on_panic has popped itself, recorded and finished. */
    return true;
}

static void group_task_abandoned(const sluice_abandoned *task)
{
    (void)sluice_group_abandoned(task);
}

static bool in_own_pool(const sluice_group *g)
{
    return sluice_task_pool() == g->pool;
}

/* ---- the private pool's handlers ------------------------------------------------ */

static void private_abandon(const sluice_abandoned *task, void *user)
{
    (void)user;
    sluice_group_abandoned(task);
}

static void private_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user; /* reported by sluice_group_wait */
}

/* ---- public calls ------------------------------------------------------------ */

sluice_err sluice_group_create(const sluice_group_config *cfg, sluice_group **out, char *errbuf,
                               size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    sluice_group *g = calloc(1, sizeof *g);
    if (!g) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(g->name, sizeof g->name, cfg->name, "group", errbuf, errlen);
    if (err) {
        free(g);
        return err;
    }
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&g->cv_idle) != 0 || sluice__cond_init(&g->cv_slot) != 0) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return SLUICE_ENOMEM;
    }
    const sluice_clock *clock = cfg->clock;
    if (!clock && cfg->pool && !cfg->parent) {
        clock = sluice_pool_clock(cfg->pool);
    }
    err = sluice_ctx_create(&g->ctx, cfg->parent, 0, clock);
    if (err) {
        if (err == SLUICE_EINVAL) {
            sluice__errf(errbuf, errlen, "parent: its deadline is on another clock than cfg.clock");
        }
        group_free(g);
        return err;
    }
    g->limit = cfg->limit;
    g->refs = 1;
    if (cfg->pool) {
        g->pool = cfg->pool;
    } else {
        unsigned threads = cfg->threads ? cfg->threads : (cfg->limit ? cfg->limit : 4);
        sluice_pool_config pc;
        sluice_pool_config_init(&pc);
        pc.name = g->name;
        pc.workers = threads;
        /* Room for the limit plus the no-op trampolines of helped tasks. */
        pc.queue_capacity = cfg->limit && 4u * cfg->limit > 4096 ? 4u * cfg->limit : 4096;
        pc.overflow = SLUICE_OVERFLOW_BLOCK;
        pc.abandon_handler = private_abandon;
        pc.panic_handler = private_panic;
        pc.clock = cfg->clock;
        char perr[160];
        err = sluice_pool_create(&pc, &g->pool, perr, sizeof perr);
        if (err) {
            sluice__errf(errbuf, errlen, "threads: the private pool failed: %s", perr);
            group_free(g);
            return err;
        }
        g->own_pool = true;
    }
    g->st.limit = g->limit;
    *out = g;
    return SLUICE_OK;
}

static sluice_err run(sluice_group *g, sluice_task_fn fn, void *arg, bool try_only)
{
    if (!g || !fn) {
        return SLUICE_EINVAL;
    }
    gtask *t = calloc(1, sizeof *t);
    if (!t) {
        return SLUICE_ENOMEM;
    }
    t->g = g;
    t->fn = fn;
    t->arg = arg;
    bool help_failed = false;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (g->waited) {
            pthread_mutex_unlock(&g->mu);
            free(t);
            return SLUICE_ECLOSED;
        }
        if (g->limit == 0 || g->pending + g->running < g->limit) {
            break;
        }
        if (try_only) {
            g->st.try_refused++;
            pthread_mutex_unlock(&g->mu);
            free(t);
            return SLUICE_EAGAIN;
        }
        bool own = tls_group == g;
        if (g->pending > 0 && in_own_pool(g) && !help_failed) {
            /* An own task that helps from here is still waiting in run():
             * it frees its slot only after the task it runs inline returns,
             * so that task (or one nested in it) that waits for a slot must
             * count it as blocked, or it would wait for ever for the thread
             * it runs on. */
            g->own_blocked += own;
            pthread_mutex_unlock(&g->mu);
            help_failed = !help_one(g);
            pthread_mutex_lock(&g->mu);
            g->own_blocked -= own;
            /* mu was dropped: tasks may have finished meanwhile (and their
             * broadcast is gone), so re-check before sleeping. */
            continue;
        }
        help_failed = false;
        if (own && g->pending == 0 && g->running <= g->own_blocked + 1) {
            /* Every task in flight is the caller or waits in run() for a
             * slot (asleep, or helping: running a task inline that is one
             * of these or the caller): waiting would never end. */
            pthread_mutex_unlock(&g->mu);
            free(t);
            return SLUICE_EDEADLK;
        }
        g->blocked++;
        g->own_blocked += own;
        pthread_cond_wait(&g->cv_slot, &g->mu);
        g->own_blocked -= own;
        g->blocked--;
    }
    t->prev = g->tail;
    if (g->tail) {
        g->tail->next = t;
    } else {
        g->head = t;
    }
    g->tail = t;
    g->pending++;
    g->refs++; /* the trampoline's */
    g->st.accepted++;
    if (g->blocked) {
        /* A waiter blocked inside the pool can help with this one. */
        pthread_cond_broadcast(&g->cv_idle);
        pthread_cond_broadcast(&g->cv_slot);
    }
    pthread_mutex_unlock(&g->mu);

    /* on_abandon: a task the pool hands back comes to the group, whatever
     * the pool's own abandon handler does (the pool may be shared). */
    /* The label is static: the pool publishes it to readers of its worker
     * states (/debug/pools, stacks) until after the trampoline returns,
     * and the trampoline's unref may free g (and g->name) before that. */
    sluice_submit_opts opts = {.label = "group", .on_abandon = group_task_abandoned};
    sluice_err err = sluice_pool_submit_ex(g->pool, trampoline, t, &opts);
    if (err == SLUICE_OK) {
        return SLUICE_OK; /* t belongs to the trampoline now */
    }
    /* Refused: no trampoline exists. Take t back unless a helper claimed
     * (and so ran) it meanwhile. */
    pthread_mutex_lock(&g->mu);
    bool taken_back = claim_locked(g, t);
    if (taken_back) {
        g->running--; /* claim_locked counted it as started */
        g->st.accepted--;
        wake_if_idle(g);
    }
    g->refs--; /* never the last: the creator holds one */
    pthread_mutex_unlock(&g->mu);
    free(t);
    return taken_back ? err : SLUICE_OK;
}

sluice_err sluice_group_run(sluice_group *g, sluice_task_fn fn, void *arg)
{
    return run(g, fn, arg, false);
}

sluice_err sluice_group_try_run(sluice_group *g, sluice_task_fn fn, void *arg)
{
    return run(g, fn, arg, true);
}

sluice_err sluice_group_wait(sluice_group *g, sluice_group_result *res)
{
    if (res) {
        memset(res, 0, sizeof *res);
    }
    if (!g) {
        return SLUICE_EINVAL;
    }
    if (tls_group == g) {
        if (res) {
            res->err = SLUICE_EDEADLK;
        }
        return SLUICE_EDEADLK; /* it would wait for itself */
    }
    pthread_mutex_lock(&g->mu);
    bool first_wait = !g->waited;
    bool help_failed = false;
    while (g->pending + g->running > 0) {
        if (g->pending > 0 && in_own_pool(g) && !help_failed) {
            pthread_mutex_unlock(&g->mu);
            help_failed = !help_one(g);
            pthread_mutex_lock(&g->mu);
            continue; /* re-check: mu was dropped (see run) */
        }
        help_failed = false;
        g->blocked++;
        pthread_cond_wait(&g->cv_idle, &g->mu);
        g->blocked--;
    }
    g->waited = true;
    g->st.waited = true;
    sluice_err err = g->first_err;
    if (!err && g->st.skipped > 0) {
        err = sluice__ctx_peek(g->ctx);
        if (!err) {
            err = SLUICE_ECANCELED;
        }
        g->first_err = err; /* later waits say the same */
    }
    if (res) {
        res->err = err;
        res->first_rc = g->first_rc;
        res->panicked = g->first_panicked;
        memcpy(res->message, g->first_msg, sizeof res->message);
    }
    pthread_mutex_unlock(&g->mu);
    if (first_wait) {
        sluice_ctx_cancel(g->ctx, err ? err : SLUICE_ECANCELED);
    }
    return err;
}

void sluice_group_cancel(sluice_group *g, sluice_err cause)
{
    if (g) {
        sluice_ctx_cancel(g->ctx, cause);
    }
}

sluice_ctx *sluice_group_ctx(sluice_group *g)
{
    return g ? g->ctx : NULL;
}

bool sluice_group_abandoned(const sluice_abandoned *task)
{
    if (!task || task->fn != trampoline) {
        return false;
    }
    gtask *t = task->arg;
    sluice_group *g = t->g;
    sluice_err err = task->reason == SLUICE_ABANDON_DROPPED ? SLUICE_EFULL
                     : task->reason == SLUICE_ABANDON_SHED  ? SLUICE_ETIMEDOUT
                                                            : SLUICE_ECLOSED;
    pthread_mutex_lock(&g->mu);
    bool first = false;
    if (claim_locked(g, t)) {
        g->running--;
        g->st.failed++;
        first = note_error(g, err, 0, false, NULL);
        wake_if_idle(g);
    }
    pthread_mutex_unlock(&g->mu);
    if (first) {
        sluice_ctx_cancel(g->ctx, err);
    }
    free(t);
    group_unref(g);
    return true;
}

void sluice_group_destroy(sluice_group *g)
{
    if (!g) {
        return;
    }
    sluice_group_wait(g, NULL);
    if (g->own_pool) {
        /* Runs or hands back the no-op trampolines still queued. */
        sluice_pool_destroy(g->pool);
    }
    group_unref(g);
}

void sluice_group_stats_get(sluice_group *g, sluice_group_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!g) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    out->limit = g->limit;
    out->pending = g->pending;
    out->running = g->running;
    out->waited = g->waited;
    pthread_mutex_unlock(&g->mu);
}

const char *sluice_group_name(const sluice_group *g)
{
    return g ? g->name : NULL;
}
