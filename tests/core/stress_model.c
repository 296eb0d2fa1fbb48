/*
 * tests/core/stress_model.c - a model-based stress test of the pool.
 *
 * Each episode builds a pool with a random configuration (K, queue
 * capacity, FIFO, sharded or fifo_batch queue, overflow policy, min_workers, prewarm, submit timeout and idle
 * expiry at their extremes too, the fault guard), runs 1-4 producer
 * threads that do random operations (submit, try_submit, submit_ex with
 * deadlines, submit deadlines, contexts live or cancelled and per-task
 * abandon handlers, batches; resize; live timeout, expiry and sampling
 * changes; stats and workers reads), with tasks that return 0, fail, panic,
 * fault, run slowly watching their stop flag, or submit more tasks from
 * inside the pool; and ends it with a drain (0, 1 ns, 1 ms, 10 ms or
 * UINT64_MAX, during or after the producers) or a destroy without drain.
 *
 * The reference model is what must have happened to each task, whatever
 * the interleaving:
 *   - accepted (submit returned SLUICE_OK): it ran exactly once, or it was
 *     handed back exactly once, to the right handler (its own on_abandon if
 *     it had one, else the pool's), with a reason that the model allows:
 *     DROPPED only under DROP_OLDEST; SHED only when its deadline had
 *     passed or its context had ended when it was handed back; DRAIN only
 *     when a drain with a finite timeout (not 0, not UINT64_MAX) timed out; DESTROY only without a drain that
 * finished.
 *   - refused: it never ran and was never handed back, and the error is
 *     one the policy and call allow (EFULL under REJECT or from a
 *     non-blocking BLOCK submit; ETIMEDOUT only with a finite timeout or
 *     deadline: UINT64_MAX is as good as none; ECANCELED only with a cancelled context; EDEADLK only from
 *     a worker of the pool; ECLOSED only once the test had started closing).
 *   - never more tasks run on workers at once than the largest K set.
 * After a drain that returned SLUICE_OK the pool's counters must equal the
 * model's exactly (submitted, completed, failed, panicked, dropped, shed,
 * abandoned, caller_ran, rejected), and the drain report's handed_back
 * must equal the DRAIN hand-backs.
 *
 * Reproducing. The operation sequences come from a seed, printed at the
 * start and with every failure (thread interleavings are not replayed,
 * but the same seed gives the same configurations and operation mix):
 *     SLUICE_MODEL_SEED=<seed> ./core_stress_model
 * Length: SLUICE_MODEL_SECONDS (soak: as long as you like), else
 * 2 s x SLUICE_STRESS_SCALE. Wall time only bounds the run; nothing is
 * asserted on it.
 */
#include <signal.h>

#include "common/pool.h"

#define MAX_TASKS 3000
#define MAX_PRODUCERS 4
#define NOT_SUBMITTED ((sluice_err)-1000) /* a batch stopped before this task */

typedef enum kind { K_OK, K_FAIL, K_PANIC, K_FAULT, K_SLOW, K_NESTED, K_COUNT } kind;

typedef enum mode { M_SUBMIT, M_TRY, M_EX, M_BATCH, M_BATCH_TRY } mode;

struct episode;

typedef struct rec {
    struct episode *ep;
    unsigned id;
    kind kind;
    mode mode;
    bool nested;              /* submitted from inside a task of this pool */
    bool has_deadline;        /* a task deadline (opts.deadline_ns) */
    bool has_submit_deadline; /* opts.submit_deadline_ns */
    bool has_ctx;
    bool ctx_deadline;
    bool ctx_cancelled; /* cancelled by the producer (before or right after submit) */
    bool own_handler;   /* opts.on_abandon */
    uint64_t deadline_ns;
    uint64_t seed; /* for a nested task's children */
    sluice_err rc;
    _Atomic int rc_set;
    bool closing_at_return;
    _Atomic int ran;
    _Atomic int ran_on_caller;
    _Atomic int handed_back;
    _Atomic int reason;
    _Atomic int via_own;
    _Atomic int shed_justified;
} rec;

typedef struct episode {
    uint64_t seed;
    unsigned index;
    sluice_pool *p;
    sluice_pool_config cfg;
    bool faults_allowed;
    _Atomic int faults_left;
    rec *recs;
    _Atomic unsigned nrecs;
    _Atomic unsigned max_k;
    _Atomic int running_workers;
    _Atomic bool closing;
    _Atomic bool stop_producers;
    _Atomic bool
        timeout_ever; /* the pool's submit timeout was finite (not 0, not UINT64_MAX) at some point */
    _Atomic uint64_t ops;
    _Atomic uint64_t panics_seen;
    /* worker lifecycle, from events and hooks */
    _Atomic unsigned init_refuse_percent;
    _Atomic uint64_t ev_start, ev_exit, ev_exit_init_failed, ev_start_failed;
    _Atomic uint64_t inits_ok, inits_refused, finis;
    _Atomic uint64_t handler_calls;
    _Atomic(sluice_pool *) live; /* ep->p for handlers, from create until destroy */
    pthread_mutex_t mu;
    _Atomic int violations;
    char first_violation[512];
} episode;

/* ---- randomness ------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(splitmix(s) % n);
}

static bool chance(uint64_t *s, unsigned percent)
{
    return below(s, 100) < percent;
}

/* ---- violations (any thread) -------------------------------------------------- */

static void violation(episode *ep, const char *fmt, ...) SLUICE_PRINTF(2, 3);

static void violation(episode *ep, const char *fmt, ...)
{
    if (atomic_fetch_add(&ep->violations, 1) == 0) {
        pthread_mutex_lock(&ep->mu);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ep->first_violation, sizeof ep->first_violation, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&ep->mu);
    }
}

/* ---- tasks ------------------------------------------------------------------------ */

/* The tasks this thread is submitting now: one of them running here ran
 * on the submitter (CALLER_RUNS), not on a worker. */
typedef struct submitting {
    rec *r[3];
    unsigned n;
} submitting;

static _Thread_local submitting tls_submitting;

static bool submitted_from_here(const rec *r)
{
    for (unsigned i = 0; i < tls_submitting.n; i++) {
        if (tls_submitting.r[i] == r) {
            return true;
        }
    }
    return false;
}

static int *volatile null_ptr;

__attribute__((noinline, no_sanitize_address, no_sanitize_undefined, no_sanitize_thread)) static int
deref_null(void)
{
    return *null_ptr;
}

static void do_submit(episode *ep, uint64_t *g, bool nested);

static void running_done(void *arg)
{
    rec *r = arg;
    if (!atomic_load(&r->ran_on_caller)) {
        atomic_fetch_sub(&r->ep->running_workers, 1);
    }
}

static int model_task(void *arg)
{
    rec *r = arg;
    episode *ep = r->ep;
    if (atomic_fetch_add(&r->ran, 1) != 0) {
        violation(ep, "task %u ran twice", r->id);
    }
    bool on_caller = submitted_from_here(r);
    atomic_store(&r->ran_on_caller, on_caller);
    if (!on_caller) {
        int now_running = atomic_fetch_add(&ep->running_workers, 1) + 1;
        unsigned k = atomic_load(&ep->max_k);
        if ((unsigned)now_running > k) {
            violation(ep, "%d tasks running on workers, K never above %u", now_running, k);
        }
    }
    sluice_cleanup_push(running_done, r);
    int rc = 0;
    switch (r->kind) {
    case K_OK:
        break;
    case K_FAIL:
        rc = 7;
        break;
    case K_PANIC:
        sluice_panic("model panic in task %u", r->id);
    case K_FAULT:
        rc = deref_null();
        break;
    case K_SLOW: {
        /* Work for up to 200 us; stop early when asked. */
        uint64_t until = real_now_ns() + 200 * SLUICE_NS_PER_US;
        while (real_now_ns() < until && !sluice_task_should_stop()) {
            sched_yield();
        }
        break;
    }
    case K_NESTED: {
        uint64_t g = r->seed;
        unsigned n = 1 + below(&g, 2);
        for (unsigned i = 0; i < n; i++) {
            do_submit(ep, &g, true);
        }
        break;
    }
    case K_COUNT:
        break;
    }
    sluice_cleanup_pop(true);
    return rc;
}

/* ---- handlers ------------------------------------------------------------------ */

static void record_handback(rec *r, const sluice_abandoned *a, bool own)
{
    episode *ep = r->ep;
    if (atomic_fetch_add(&r->handed_back, 1) != 0) {
        violation(ep, "task %u handed back twice", r->id);
    }
    atomic_store(&r->reason, (int)a->reason);
    atomic_store(&r->via_own, own);
    if (a->reason == SLUICE_ABANDON_SHED) {
        bool late = a->deadline_ns && sluice_clock_now(NULL) >= a->deadline_ns;
        bool ended = a->ctx && sluice_ctx_done(a->ctx);
        atomic_store(&r->shed_justified, late || ended);
    }
    if (a->fn != model_task || a->arg != r) {
        violation(ep, "task %u handed back with the wrong fn/arg", r->id);
    }
}

/* Handlers may call the stats getters (pool.h): one that ran with a pool
 * lock held would deadlock here, and the test would hang (ctest fails it). */
static void poke_getters(episode *ep)
{
    sluice_pool *p = atomic_load(&ep->live);
    if (atomic_fetch_add(&ep->handler_calls, 1) % 8 == 0 && p) {
        sluice_pool_stats s;
        sluice_pool_stats_get(p, &s);
        sluice_worker_info info[4];
        (void)sluice_pool_workers_get(p, info, 4);
    }
}

static void pool_abandon(const sluice_abandoned *a, void *user)
{
    poke_getters(user);
    record_handback((rec *)a->arg, a, false);
}

static void model_event(const sluice_pool_event *ev, void *user)
{
    episode *ep = user;
    poke_getters(ep);
    switch (ev->kind) {
    case SLUICE_EVENT_WORKER_START:
        atomic_fetch_add(&ep->ev_start, 1);
        break;
    case SLUICE_EVENT_WORKER_EXIT:
        atomic_fetch_add(&ep->ev_exit, 1);
        if (ev->detail && strcmp(ev->detail, "init-failed") == 0) {
            atomic_fetch_add(&ep->ev_exit_init_failed, 1);
        }
        break;
    case SLUICE_EVENT_WORKER_START_FAILED:
        atomic_fetch_add(&ep->ev_start_failed, 1);
        break;
    default:
        break;
    }
}

static int model_init(void *user, unsigned index, void **worker_state)
{
    episode *ep = user;
    /* A pseudo-random refusal from the index and the number of attempts
     * so far (not successes only: a hook that refused would then refuse
     * every retry of the same slot for ever, and blocked submitters rightly
     * wait for ever for a worker that never comes). */
    uint64_t g = ep->seed ^ ((uint64_t)index << 32) ^
                 (atomic_load(&ep->inits_ok) + atomic_load(&ep->inits_refused)) * 0x9E3779B97F4A7C15ull;
    if (below(&g, 100) < atomic_load(&ep->init_refuse_percent)) {
        atomic_fetch_add(&ep->inits_refused, 1);
        return -1;
    }
    atomic_fetch_add(&ep->inits_ok, 1);
    *worker_state = ep;
    return 0;
}

static void model_fini(void *user, unsigned index, void *worker_state)
{
    episode *ep = user;
    (void)index;
    if (worker_state != ep) {
        violation(ep, "fini got worker_state %p", worker_state);
    }
    atomic_fetch_add(&ep->finis, 1);
}

static void own_abandon(const sluice_abandoned *a)
{
    record_handback((rec *)a->arg, a, true);
}

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    poke_getters(user);
    atomic_fetch_add(&((episode *)user)->panics_seen, 1);
}

/* ---- producers ------------------------------------------------------------------ */

static rec *new_rec(episode *ep, uint64_t *g, bool nested)
{
    unsigned id = atomic_fetch_add(&ep->nrecs, 1);
    if (id >= MAX_TASKS) {
        atomic_store(&ep->stop_producers, true);
        return NULL;
    }
    rec *r = &ep->recs[id];
    r->ep = ep;
    r->id = id;
    r->nested = nested;
    r->seed = splitmix(g);
    unsigned k = below(g, 100);
    if (k < 55) {
        r->kind = K_OK;
    } else if (k < 67) {
        r->kind = K_FAIL;
    } else if (k < 73) {
        r->kind = K_PANIC;
    } else if (k < 88) {
        r->kind = K_SLOW;
    } else if (k < 96 && !nested) {
        r->kind = K_NESTED;
    } else if (ep->faults_allowed && atomic_fetch_sub(&ep->faults_left, 1) > 0) {
        r->kind = K_FAULT;
    } else {
        r->kind = K_OK;
    }
    return r;
}

static void finish_rec(episode *ep, rec *r, sluice_err rc)
{
    r->rc = rc;
    r->closing_at_return = atomic_load(&ep->closing);
    atomic_store(&r->rc_set, 1);
}

/* One submit (or a batch of up to three) with random options. */
static void do_submit(episode *ep, uint64_t *g, bool nested)
{
    mode m = (mode)below(g, 5);
    unsigned n = (m == M_BATCH || m == M_BATCH_TRY) ? 1 + below(g, 3) : 1;
    rec *rs[3];
    sluice_submit_opts opts[3];
    sluice_task_spec specs[3];
    sluice_ctx *ctxs[3] = {NULL, NULL, NULL};
    unsigned made = 0;
    for (unsigned i = 0; i < n; i++) {
        rec *r = new_rec(ep, g, nested);
        if (!r) {
            break;
        }
        r->mode = m;
        memset(&opts[i], 0, sizeof opts[i]);
        bool with_opts = m != M_SUBMIT && m != M_TRY;
        if (with_opts) {
            uint64_t now = sluice_clock_now(NULL);
            if (chance(g, 30)) {
                r->has_deadline = true;
                unsigned d = below(g, 4);
                opts[i].deadline_ns = d == 0   ? 1
                                      : d == 1 ? now + below(g, 300) * SLUICE_NS_PER_US
                                      : d == 2 ? UINT64_MAX
                                               : now;
                r->deadline_ns = opts[i].deadline_ns;
            }
            if (chance(g, 20)) {
                /* UINT64_MAX: a deadline that never comes (not a finite one) */
                r->has_submit_deadline = chance(g, 50);
                opts[i].submit_deadline_ns =
                    r->has_submit_deadline ? now + below(g, 500) * SLUICE_NS_PER_US : UINT64_MAX;
            }
            if (chance(g, 20)) {
                r->has_ctx = true;
                uint64_t cd = 0;
                if (chance(g, 40)) {
                    r->ctx_deadline = true;
                    cd = now + below(g, 500) * SLUICE_NS_PER_US;
                }
                if (sluice_ctx_create(&ctxs[i], NULL, cd, NULL) != SLUICE_OK) {
                    violation(ep, "sluice_ctx_create failed");
                    ctxs[i] = NULL;
                    r->has_ctx = false;
                } else if (chance(g, 35)) {
                    r->ctx_cancelled = true;
                    sluice_ctx_cancel(ctxs[i], SLUICE_ECANCELED);
                }
                opts[i].ctx = ctxs[i];
            }
            if (chance(g, 25)) {
                r->own_handler = true;
                opts[i].on_abandon = own_abandon;
            }
            opts[i].label = "model";
        }
        specs[i] = (sluice_task_spec){.fn = model_task, .arg = r, .opts = with_opts ? &opts[i] : NULL};
        rs[i] = r;
        made++;
    }
    if (made == 0) {
        return;
    }
    submitting saved = tls_submitting;
    tls_submitting.n = made;
    for (unsigned i = 0; i < made; i++) {
        tls_submitting.r[i] = rs[i];
    }
    if (made == 1 && m != M_BATCH && m != M_BATCH_TRY) {
        sluice_err rc;
        switch (m) {
        case M_TRY:
            rc = sluice_pool_try_submit(ep->p, model_task, rs[0]);
            break;
        case M_EX:
            rc = sluice_pool_submit_ex(ep->p, model_task, rs[0], &opts[0]);
            break;
        default:
            rc = sluice_pool_submit(ep->p, model_task, rs[0]);
            break;
        }
        tls_submitting = saved;
        finish_rec(ep, rs[0], rc);
    } else {
        size_t accepted = 0;
        sluice_err rc = sluice_pool_submit_batch(ep->p, specs, made, m == M_BATCH_TRY, &accepted);
        tls_submitting = saved;
        for (unsigned i = 0; i < made; i++) {
            finish_rec(ep, rs[i], i < accepted ? SLUICE_OK : i == accepted ? rc : NOT_SUBMITTED);
        }
    }
    for (unsigned i = 0; i < made; i++) {
        sluice_ctx_release(ctxs[i]);
    }
}

static const uint64_t duration_choices[] = {0, 1, 100 * SLUICE_NS_PER_US, SLUICE_NS_PER_MS, UINT64_MAX};
#define NDURATIONS (sizeof duration_choices / sizeof duration_choices[0])

typedef struct producer {
    episode *ep;
    uint64_t seed;
    pthread_t th;
} producer;

static void set_k(episode *ep, unsigned k)
{
    /* Raise the model's bound before the pool may use the new K. */
    unsigned cur = atomic_load(&ep->max_k);
    while (k > cur && !atomic_compare_exchange_weak(&ep->max_k, &cur, k)) {
    }
    sluice_err rc = sluice_pool_resize(ep->p, k);
    if (rc != SLUICE_OK && !(rc == SLUICE_ECLOSED && atomic_load(&ep->closing))) {
        violation(ep, "resize(%u): %s", k, sluice_err_name(rc));
    }
}

static void *producer_main(void *arg)
{
    producer *pr = arg;
    episode *ep = pr->ep;
    uint64_t g = pr->seed;
    while (!atomic_load(&ep->stop_producers)) {
        unsigned op = below(&g, 100);
        if (op < 86) {
            do_submit(ep, &g, false);
        } else if (op < 90) {
            unsigned lo = ep->cfg.min_workers ? ep->cfg.min_workers : 1;
            set_k(ep, lo + below(&g, 7 - lo));
        } else if (op < 93) {
            uint64_t t = duration_choices[below(&g, NDURATIONS)];
            if (t != 0 && t != UINT64_MAX) {
                atomic_store(&ep->timeout_ever, true);
            }
            sluice_pool_set_submit_timeout(ep->p, t);
        } else if (op < 96) {
            sluice_pool_set_idle_expiry(ep->p, duration_choices[below(&g, NDURATIONS)]);
        } else if (op < 97) {
            sluice_pool_set_timing_sample(ep->p, below(&g, 3));
        } else {
            sluice_pool_stats s;
            sluice_pool_stats_get(ep->p, &s);
            sluice_worker_info info[8];
            size_t n = sluice_pool_workers_get(ep->p, info, 8);
            if (s.capacity == 0 || n > 64) {
                violation(ep, "stats: capacity %u, %zu workers", s.capacity, n);
            }
        }
        atomic_fetch_add(&ep->ops, 1);
    }
    return NULL;
}

/* ---- checking an episode ------------------------------------------------------ */

typedef struct tallies {
    uint64_t accepted, ran, ran_ok, ran_failed, ran_panicked, on_caller, dropped, shed, drain, destroy,
        rejected;
} tallies;

static bool refusal_allowed(const episode *ep, const rec *r, bool blocking)
{
    sluice_overflow pol = ep->cfg.overflow;
    switch ((int)r->rc) {
    case SLUICE_EFULL:
        return pol == SLUICE_OVERFLOW_REJECT || (pol == SLUICE_OVERFLOW_BLOCK && !blocking);
    case SLUICE_ETIMEDOUT:
        return pol == SLUICE_OVERFLOW_BLOCK && blocking &&
               (atomic_load(&ep->timeout_ever) || r->has_submit_deadline || r->ctx_deadline);
    case SLUICE_ECANCELED:
        return pol == SLUICE_OVERFLOW_BLOCK && blocking && r->ctx_cancelled;
    case SLUICE_EDEADLK:
        return pol == SLUICE_OVERFLOW_BLOCK && blocking && r->nested;
    case SLUICE_ECLOSED:
        return r->closing_at_return;
    default:
        return false;
    }
}

static const char *kind_name(kind k)
{
    static const char *const names[] = {"ok", "fail", "panic", "fault", "slow", "nested"};
    return k < K_COUNT ? names[k] : "?";
}

/* Per-task checks (after destroy: every thread has finished). */
static tallies check_tasks(episode *ep, bool drain_finished, sluice_err drain_rc)
{
    tallies t = {0};
    unsigned n = atomic_load(&ep->nrecs);
    if (n > MAX_TASKS) {
        n = MAX_TASKS;
    }
    for (unsigned i = 0; i < n; i++) {
        rec *r = &ep->recs[i];
        if (!atomic_load(&r->rc_set)) {
            violation(ep, "task %u: its submit never returned", i);
            continue;
        }
        int ran = atomic_load(&r->ran), back = atomic_load(&r->handed_back);
        bool blocking = r->mode == M_SUBMIT || r->mode == M_EX || r->mode == M_BATCH;
        if (r->rc == SLUICE_OK) {
            t.accepted++;
            if (ran + back != 1) {
                violation(ep, "task %u (%s) accepted: ran %d, handed back %d", i, kind_name(r->kind), ran,
                          back);
                continue;
            }
        } else {
            if (ran + back != 0) {
                violation(ep, "task %u refused (%s): ran %d, handed back %d", i,
                          r->rc == NOT_SUBMITTED ? "not submitted" : sluice_err_name(r->rc), ran, back);
                continue;
            }
            if (r->rc != NOT_SUBMITTED) {
                if (!refusal_allowed(ep, r, blocking)) {
                    violation(ep, "task %u: refusal %s not allowed (policy %s, mode %d, nested %d)", i,
                              sluice_err_name(r->rc), sluice_overflow_name(ep->cfg.overflow), (int)r->mode,
                              (int)r->nested);
                }
                if (r->rc != SLUICE_ECLOSED) {
                    t.rejected++;
                }
            }
            continue;
        }
        if (ran) {
            t.ran++;
            bool caller = atomic_load(&r->ran_on_caller);
            t.on_caller += caller;
            if (caller && ep->cfg.overflow != SLUICE_OVERFLOW_CALLER_RUNS) {
                violation(ep, "task %u ran on its submitter under %s", i,
                          sluice_overflow_name(ep->cfg.overflow));
            }
            switch (r->kind) {
            case K_FAIL:
                t.ran_failed++;
                break;
            case K_PANIC:
            case K_FAULT:
                t.ran_panicked++;
                break;
            default:
                t.ran_ok++;
                break;
            }
            continue;
        }
        sluice_abandon_reason why = (sluice_abandon_reason)atomic_load(&r->reason);
        if ((bool)atomic_load(&r->via_own) != r->own_handler) {
            violation(ep, "task %u went to the %s handler", i, r->own_handler ? "pool's" : "task's own");
        }
        switch (why) {
        case SLUICE_ABANDON_DROPPED:
            t.dropped++;
            if (ep->cfg.overflow != SLUICE_OVERFLOW_DROP_OLDEST) {
                violation(ep, "task %u dropped under %s", i, sluice_overflow_name(ep->cfg.overflow));
            }
            break;
        case SLUICE_ABANDON_SHED:
            t.shed++;
            if (!(r->has_deadline || r->has_ctx) || !atomic_load(&r->shed_justified)) {
                violation(ep, "task %u shed with deadline %d ctx %d (justified %d)", i, (int)r->has_deadline,
                          (int)r->has_ctx, atomic_load(&r->shed_justified));
            }
            break;
        case SLUICE_ABANDON_DRAIN:
            t.drain++;
            if (drain_rc != SLUICE_ETIMEDOUT) {
                violation(ep, "task %u handed back DRAIN, drain returned %s", i, sluice_err_name(drain_rc));
            }
            break;
        case SLUICE_ABANDON_DESTROY:
            t.destroy++;
            if (drain_finished && drain_rc == SLUICE_OK) {
                violation(ep, "task %u handed back DESTROY after a drain that finished", i);
            }
            break;
        default:
            violation(ep, "task %u: reason %d", i, (int)why);
        }
    }
    return t;
}

/* Pool counters against the model, after a drain that returned OK. */
static void check_counters(episode *ep, const sluice_pool_stats *s, const tallies *t,
                           const sluice_drain_report *rep)
{
#define EQ(field, want)                                                                                      \
    do {                                                                                                     \
        if ((uint64_t)(field) != (uint64_t)(want)) {                                                         \
            violation(ep, "%s = %llu, model says %llu", #field, (unsigned long long)(field),                 \
                      (unsigned long long)(want));                                                           \
        }                                                                                                    \
    } while (0)
    EQ(s->submitted, t->accepted);
    EQ(s->completed, t->ran_ok);
    EQ(s->failed, t->ran_failed);
    EQ(s->panicked, t->ran_panicked);
    EQ(s->dropped, t->dropped);
    EQ(s->shed, t->shed);
    EQ(s->abandoned, t->drain + t->destroy);
    EQ(s->caller_ran, t->on_caller);
    EQ(s->rejected, t->rejected);
    EQ(rep->handed_back, t->drain);
    EQ(s->queue_depth, 0);
    EQ(s->running, 0);
#undef EQ
}

/* ---- one episode -------------------------------------------------------------- */

static void run_episode(uint64_t seed, unsigned index)
{
    episode *ep = calloc(1, sizeof *ep);
    assert_non_null(ep);
    ep->recs = calloc(MAX_TASKS, sizeof *ep->recs);
    assert_non_null(ep->recs);
    pthread_mutex_init(&ep->mu, NULL);
    ep->seed = seed;
    ep->index = index;
    uint64_t g = seed;

    sluice_pool_config *cfg = &ep->cfg;
    sluice_pool_config_init(cfg);
    cfg->name = "model";
    cfg->workers = 1 + below(&g, 6);
    cfg->queue_capacity = 1 + below(&g, 8);
    cfg->overflow = (sluice_overflow)below(&g, 4);
    cfg->min_workers = chance(&g, 30) ? below(&g, cfg->workers + 1) : 0;
    cfg->prewarm = chance(&g, 30);
    cfg->submit_timeout_ns = duration_choices[below(&g, NDURATIONS)];
    cfg->idle_expiry_ns = duration_choices[below(&g, NDURATIONS)];
    cfg->abandon_handler = pool_abandon;
    cfg->panic_handler = quiet_panic;
    cfg->event_handler = model_event;
    cfg->user = ep;
    if (chance(&g, 40)) {
        cfg->worker_init = model_init;
        cfg->worker_fini = model_fini;
        /* Refusals only without prewarm (there create would fail). */
        atomic_store(&ep->init_refuse_percent, !cfg->prewarm && chance(&g, 50) ? 10 : 0);
    }
    /* Drawn last, so older seeds keep their other choices. The model
     * checks no order, so it holds for the sharded and fifo_batch queues
     * as they are. fifo_batch claims runs only from 16 queued tasks up,
     * so its queues are drawn deep enough to claim. */
    unsigned disc = below(&g, 3);
    cfg->queue_discipline = disc == 0   ? SLUICE_QUEUE_FIFO
                            : disc == 1 ? SLUICE_QUEUE_SHARDED
                                        : SLUICE_QUEUE_FIFO_BATCH;
    if (cfg->queue_discipline == SLUICE_QUEUE_FIFO_BATCH) {
        cfg->queue_capacity = 16 + below(&g, 240);
    }
    /* Faults only where the guard can catch them: on workers (not under
     * CALLER_RUNS, where a task may run on a producer) and not under TSan
     * (it cannot follow a siglongjmp out of a handler). */
    ep->faults_allowed = !SLUICE_TEST_TSAN && cfg->overflow != SLUICE_OVERFLOW_CALLER_RUNS && chance(&g, 10);
    atomic_store(&ep->faults_left, 1);
    cfg->fault_mode = ep->faults_allowed ? SLUICE_FAULT_RECOVER : SLUICE_FAULT_OFF;
    atomic_store(&ep->max_k, cfg->workers);
    atomic_store(&ep->timeout_ever, cfg->submit_timeout_ns != 0 && cfg->submit_timeout_ns != UINT64_MAX);
    char err[256];
    sluice_err crc = sluice_pool_create(cfg, &ep->p, err, sizeof err);
    atomic_store(&ep->live, crc == SLUICE_OK ? ep->p : NULL);
    if (crc != SLUICE_OK) {
        fail_msg("episode %u seed %llu: create: %s: %s", index, (unsigned long long)seed,
                 sluice_err_name(crc), err);
    }

    unsigned nprod = 1 + below(&g, MAX_PRODUCERS);
    producer prods[MAX_PRODUCERS];
    for (unsigned i = 0; i < nprod; i++) {
        prods[i].ep = ep;
        prods[i].seed = splitmix(&g);
        START_THREAD(&prods[i].th, producer_main, &prods[i]);
    }
    /* Shorter episodes under the sanitizers: more configurations per run. */
    uint64_t target = under_sanitizer() ? 20 + below(&g, 100) : 50 + below(&g, 600);
    unsigned ending = below(&g, 3);
    uint64_t drain_timeout =
        (uint64_t[]){0, 1, SLUICE_NS_PER_MS, 10 * SLUICE_NS_PER_MS, UINT64_MAX}[below(&g, 5)];
    uint64_t limit = real_now_ns() + SAFETY_NS;
    while (atomic_load(&ep->ops) < target && !atomic_load(&ep->stop_producers) && real_now_ns() < limit) {
        poll_pause();
    }

    sluice_drain_report rep = {0};
    sluice_err drc = SLUICE_OK;
    bool drained = false;
    if (ending == 0) { /* drain while the producers keep submitting */
        atomic_store(&ep->closing, true);
        drc = sluice_pool_drain(ep->p, drain_timeout, &rep);
        drained = true;
    }
    atomic_store(&ep->stop_producers, true);
    for (unsigned i = 0; i < nprod; i++) {
        pthread_join(prods[i].th, NULL);
    }
    if (ending != 0 && !atomic_load(&ep->closing) && atomic_load(&ep->init_refuse_percent) == 0) {
        /* Quiet and open: min_workers are alive (expiry never takes
         * them, a fault's worker is replaced at once). */
        uint64_t lim = real_now_ns() + SAFETY_NS;
        sluice_pool_stats q;
        while (sluice_pool_stats_get(ep->p, &q), q.workers < cfg->min_workers && real_now_ns() < lim) {
            poll_pause();
        }
        if (q.workers < cfg->min_workers) {
            violation(ep, "%u workers alive, min_workers %u", q.workers, cfg->min_workers);
        }
    }
    if (ending == 1) { /* drain once they have stopped */
        atomic_store(&ep->closing, true);
        drc = sluice_pool_drain(ep->p, drain_timeout, &rep);
        drained = true;
    }
    atomic_store(&ep->closing, true);
    sluice_pool_stats s;
    sluice_pool_stats_get(ep->p, &s);
    if (drained && drc != SLUICE_OK && drc != SLUICE_ETIMEDOUT) {
        violation(ep, "drain returned %s", sluice_err_name(drc));
    }
    if (drained && drc == SLUICE_ETIMEDOUT && (drain_timeout == 0 || drain_timeout == UINT64_MAX)) {
        violation(ep, "drain(%llu) timed out", (unsigned long long)drain_timeout);
    }
    if (drained && drc == SLUICE_OK && rep.handed_back != 0) {
        violation(ep, "drain OK but handed back %llu", (unsigned long long)rep.handed_back);
    }
    atomic_store(&ep->live, NULL);
    sluice_pool_destroy(ep->p);
    /* Every thread that started reported its exit once; every worker
     * whose init succeeded was finalised; a refused init is an exit
     * without a start. */
    if (atomic_load(&ep->ev_start) + atomic_load(&ep->ev_exit_init_failed) != atomic_load(&ep->ev_exit)) {
        violation(ep, "worker events: %llu starts + %llu init failures != %llu exits",
                  (unsigned long long)atomic_load(&ep->ev_start),
                  (unsigned long long)atomic_load(&ep->ev_exit_init_failed),
                  (unsigned long long)atomic_load(&ep->ev_exit));
    }
    if (cfg->worker_init && atomic_load(&ep->inits_ok) != atomic_load(&ep->finis)) {
        violation(ep, "%llu inits succeeded, %llu finis", (unsigned long long)atomic_load(&ep->inits_ok),
                  (unsigned long long)atomic_load(&ep->finis));
    }
    if (atomic_load(&ep->inits_refused) != atomic_load(&ep->ev_exit_init_failed)) {
        violation(ep, "%llu inits refused, %llu init-failed exits",
                  (unsigned long long)atomic_load(&ep->inits_refused),
                  (unsigned long long)atomic_load(&ep->ev_exit_init_failed));
    }
    if (atomic_load(&ep->ev_start_failed) != 0) {
        violation(ep, "%llu worker start failures", (unsigned long long)atomic_load(&ep->ev_start_failed));
    }
    tallies t = check_tasks(ep, drained, drained ? drc : SLUICE_OK);
    if (drained && drc == SLUICE_OK) {
        check_counters(ep, &s, &t, &rep);
    }
    if (atomic_load(&ep->violations) > 0) {
        fail_msg(
            "episode %u (seed %llu; replay with SLUICE_MODEL_SEED=%llu): %d violation(s), first: %s\n"
            "  config: K=%u cap=%zu queue=%s policy=%s min=%u prewarm=%d timeout=%llu expiry=%llu faults=%d "
            "producers=%u ending=%u drain_timeout=%llu",
            index, (unsigned long long)seed, (unsigned long long)seed, atomic_load(&ep->violations),
            ep->first_violation, cfg->workers, cfg->queue_capacity,
            sluice_queue_discipline_name(cfg->queue_discipline), sluice_overflow_name(cfg->overflow),
            cfg->min_workers, (int)cfg->prewarm, (unsigned long long)cfg->submit_timeout_ns,
            (unsigned long long)cfg->idle_expiry_ns, (int)ep->faults_allowed, nprod, ending,
            (unsigned long long)drain_timeout);
    }
    pthread_mutex_destroy(&ep->mu);
    free(ep->recs);
    free(ep);
}

static void test_model(void **state)
{
    (void)state;
    const char *env_seed = getenv("SLUICE_MODEL_SEED");
    const char *env_secs = getenv("SLUICE_MODEL_SECONDS");
    bool replay = env_seed && *env_seed;
    uint64_t seed = replay ? strtoull(env_seed, NULL, 0) : (real_now_ns() ^ ((uint64_t)getpid() << 32));
    double secs = env_secs && *env_secs ? strtod(env_secs, NULL) : 2.0 * stress_scale();
    print_message("model: seed %llu, %s\n", (unsigned long long)seed,
                  replay ? "one episode (replay)" : "episodes seeded from it");
    if (replay) {
        run_episode(seed, 0);
        return;
    }
    uint64_t until = real_now_ns() + (uint64_t)(secs * 1e9);
    uint64_t g = seed;
    unsigned episodes = 0;
    do {
        run_episode(splitmix(&g), episodes);
        episodes++;
    } while (real_now_ns() < until);
    print_message("model: %u episodes, no violation\n", episodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
