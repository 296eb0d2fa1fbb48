/*
 * src/core/overload.c - overload queue management at pop time: CoDel
 * (shed at the head while a queue stands) and adaptive LIFO (serve the
 * newest while it stands), per pool, off by default.
 *
 * Why at pop time. A queue's delay is known only when a task leaves it:
 * the sojourn (now - enqueue_ns) of the task at the head. Judging there
 * keeps the submit path untouched (beyond stamping every task), and works
 * with any queue discipline behind sluice__queue_ops: the FIFO ring, the
 * locked deque, a fair queue (where "the head" is the task the discipline
 * would serve next: with it, CoDel judges the task the weighted round
 * robin picked, so a flooding tenant's old tasks are the ones shed). LIFO
 * needs the two optional ops, pop_newest and oldest_ns; CoDel needs
 * neither. The fair queue offers both per tenant: LIFO there serves the
 * newest task of the tenant whose turn it is.
 *
 * The detector (shared by both modes). The queue *stands* once the oldest
 * task's sojourn has stayed at or above `target` for a whole `interval`
 * (CoDel's "first_above_time"); it stops standing when a look at the
 * oldest task finds it below target, or finds the queue empty. A burst
 * that drains within an interval never stands: good queue, left alone.
 *
 * CoDel (RFC 8289's control law). When the queue starts standing, the
 * head task is shed and the dropping state begins with count 1 (or the
 * previous cycle's count when it ended less than 16 intervals ago); then a
 * head task is shed at each point drop_next, which advances by
 * interval / sqrt(count) after each such shed. RFC 8289 targets TCP, whose
 * senders slow down when a packet is dropped; a pool's submitters usually
 * do not (open-loop load), and the schedule alone sheds far too slowly to
 * empty a queue under a 2x overload (tens of tasks a second after seconds
 * of overload, against thousands of excess arrivals). So, as folly's CoDel
 * executor does, while dropping every task whose sojourn is above `slough`
 * (2 x target by default) is shed too. Never a task below the target.
 * bench/workloads.c's `overload` workload measures both (docs/RATIONALE.md).
 *
 * Adaptive LIFO (Fail at Scale). While the queue stands, workers take the
 * newest task: under overload its caller is the one most likely still
 * waiting, and the oldest are the ones CoDel (or their deadlines) will
 * shed. The detector then looks at the oldest end through oldest_ns, so
 * LIFO ends as soon as the oldest task is below target or the queue is
 * empty.
 *
 * Concurrency. The detector and the schedule are one state, shared by all
 * workers, under `mu` (a leaf lock: nothing else is taken while it is
 * held; the queue ops are called outside it). A look that finds the state
 * calm (not standing, not dropping, nothing above target yet) and the task
 * below target takes no lock: a pool that is not overloaded pays a clock
 * read and one relaxed load per pop. Looks from different workers may
 * arrive out of time order; the state clamps time so it never runs back.
 * Between a look at the oldest task (oldest_ns) and its pop, another
 * worker may take it: the task shed is then the next oldest, a little
 * younger. Sheds go to the abandon handler with no lock held.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/overload.h"

/* ---- the state machine ----------------------------------------------------- */

void sluice__codel_init(sluice__codel *c, uint64_t target_ns, uint64_t interval_ns, uint64_t slough_ns)
{
    memset(c, 0, sizeof *c);
    c->target_ns = target_ns;
    c->interval_ns = interval_ns;
    c->slough_ns = slough_ns;
}

uint64_t sluice__codel_control_law(uint64_t t, uint64_t interval_ns, uint64_t count)
{
    double step = (double)interval_ns / sqrt((double)(count ? count : 1));
    /* 2^64 as a double: anything at or above it saturates. */
    uint64_t d = step >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)step;
    return sluice__add_sat(t, d);
}

bool sluice__codel_observe(sluice__codel *c, uint64_t now, uint64_t sojourn, bool empty)
{
    if (now < c->last_now) {
        now = c->last_now;
    }
    c->last_now = now;
    if (empty || sojourn < c->target_ns) {
        c->first_above_ns = 0;
        c->standing = false;
        if (empty) {
            c->dropping = false;
        }
        return false;
    }
    if (c->first_above_ns == 0) {
        c->first_above_ns = sluice__add_sat(now, c->interval_ns);
        c->standing = false;
    } else {
        /* UINT64_MAX is where a saturated interval lands: never. */
        c->standing = c->first_above_ns != UINT64_MAX && now >= c->first_above_ns;
    }
    return c->standing;
}

sluice__codel_verdict sluice__codel_judge(sluice__codel *c, uint64_t now, uint64_t sojourn)
{
    if (now < c->last_now) {
        now = c->last_now;
    }
    if (c->dropping) {
        if (!c->standing) {
            c->dropping = false;
            return SLUICE__CODEL_KEEP;
        }
        if (now >= c->drop_next_ns) {
            c->count++;
            c->drop_next_ns = sluice__codel_control_law(c->drop_next_ns, c->interval_ns, c->count);
            return SLUICE__CODEL_SHED_SCHEDULE;
        }
        if (c->slough_ns != UINT64_MAX && sojourn > c->slough_ns) {
            return SLUICE__CODEL_SHED_SLOUGH;
        }
        return SLUICE__CODEL_KEEP;
    }
    if (!c->standing) {
        return SLUICE__CODEL_KEEP;
    }
    /* Enter dropping. If the last cycle ended recently, its drop rate is a
     * good start for this one (RFC 8289, the Linux variant). */
    c->dropping = true;
    uint64_t delta = c->count - c->lastcount;
    uint64_t recent = c->interval_ns > UINT64_MAX / 16 ? UINT64_MAX : 16 * c->interval_ns;
    c->count = 1;
    if (delta > 1 && (now < c->drop_next_ns || now - c->drop_next_ns < recent)) {
        c->count = delta;
    }
    c->drop_next_ns = sluice__codel_control_law(now, c->interval_ns, c->count);
    c->lastcount = c->count;
    return SLUICE__CODEL_SHED_SCHEDULE;
}

/* ---- the pool's overload state ----------------------------------------------- */

struct sluice__overload {
    /* Immutable after create. */
    bool codel;
    bool lifo;
    uint64_t target_ns;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    sluice__codel state;

    /* Written under mu, read without it (relaxed: hints and gauges). */
    _Atomic bool calm;    /* not standing, not dropping, no task above target seen */
    _Atomic bool lifo_on; /* workers take the newest task */
    _Atomic bool dropping;
    /* Counters (fetch_add, relaxed). */
    _Atomic uint64_t codel_shed;
    _Atomic uint64_t lifo_switches;
};

sluice_err sluice__overload_create(struct sluice_pool *p, struct sluice__overload **out)
{
    const sluice_pool_config *cfg = &p->cfg;
    bool lifo = cfg->overload == SLUICE_OVERLOAD_LIFO || cfg->overload == SLUICE_OVERLOAD_CODEL_LIFO;
    if (lifo && (!p->qops->pop_newest || !p->qops->oldest_ns)) {
        return SLUICE_EINVAL;
    }
    struct sluice__overload *ov = calloc(1, sizeof *ov);
    if (!ov) {
        return SLUICE_ENOMEM;
    }
    uint64_t target = cfg->overload_target_ns ? cfg->overload_target_ns : SLUICE_OVERLOAD_TARGET_DEFAULT_NS;
    uint64_t interval =
        cfg->overload_interval_ns ? cfg->overload_interval_ns : SLUICE_OVERLOAD_INTERVAL_DEFAULT_NS;
    uint64_t slough = cfg->overload_slough_ns ? cfg->overload_slough_ns : sluice__add_sat(target, target);
    ov->codel = cfg->overload == SLUICE_OVERLOAD_CODEL || cfg->overload == SLUICE_OVERLOAD_CODEL_LIFO;
    ov->lifo = lifo;
    ov->target_ns = target;
    pthread_mutex_init(&ov->mu, NULL);
    sluice__codel_init(&ov->state, target, interval, slough);
    atomic_init(&ov->calm, true);
    atomic_init(&ov->lifo_on, false);
    atomic_init(&ov->dropping, false);
    atomic_init(&ov->codel_shed, 0);
    atomic_init(&ov->lifo_switches, 0);
    *out = ov;
    return SLUICE_OK;
}

void sluice__overload_destroy(struct sluice__overload *ov)
{
    if (ov) {
        pthread_mutex_destroy(&ov->mu);
        free(ov);
    }
}

void sluice__overload_stats(struct sluice__overload *ov, sluice_pool_stats *out)
{
    if (!ov) {
        return;
    }
    out->codel_shed = atomic_load_explicit(&ov->codel_shed, memory_order_relaxed);
    out->lifo_switches = atomic_load_explicit(&ov->lifo_switches, memory_order_relaxed);
    out->lifo = atomic_load_explicit(&ov->lifo_on, memory_order_relaxed);
    out->codel_dropping = atomic_load_explicit(&ov->dropping, memory_order_relaxed);
}

static inline uint64_t sojourn_of(uint64_t now, uint64_t enqueue_ns)
{
    return enqueue_ns && now > enqueue_ns ? now - enqueue_ns : 0;
}

/* One look at the oldest task (or an empty queue), under mu. Returns the
 * verdict on that task (KEEP when CoDel is off or the queue is empty). */
static sluice__codel_verdict look(struct sluice__overload *ov, uint64_t now, uint64_t sojourn, bool empty)
{
    pthread_mutex_lock(&ov->mu);
    bool standing = sluice__codel_observe(&ov->state, now, sojourn, empty);
    sluice__codel_verdict v = SLUICE__CODEL_KEEP;
    if (ov->codel && !empty) {
        v = sluice__codel_judge(&ov->state, now, sojourn);
    }
    bool lifo = ov->lifo && standing;
    if (lifo && !atomic_load_explicit(&ov->lifo_on, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ov->lifo_switches, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&ov->lifo_on, lifo, memory_order_relaxed);
    atomic_store_explicit(&ov->dropping, ov->state.dropping, memory_order_relaxed);
    atomic_store_explicit(&ov->calm,
                          ov->state.first_above_ns == 0 && !ov->state.standing && !ov->state.dropping,
                          memory_order_relaxed);
    pthread_mutex_unlock(&ov->mu);
    return v;
}

/* A task CoDel shed: counted in the worker's shard (so the accounting
 * identity holds through `shed`) and in codel_shed, the slot freed for
 * blocked submitters, then handed back with no lock held. */
static void shed(struct sluice_pool *p, sluice__worker *w, sluice__task *t)
{
    atomic_fetch_add_explicit(&p->overload->codel_shed, 1, memory_order_relaxed);
    sluice__shard_add(false, &w->shard.shed, 1);
    if (t->tenant) { /* the fair queue's per-tenant count, before the status (as run_task) */
        p->qops->finish(p->q, t, SLUICE__FROM_POP, SLUICE__OUT_SHED, -1, 0);
    }
    sluice__status_set(w, SLUICE_WORKER_IDLE, 1);
    sluice__notify_space(p);
    sluice__abandon(p, t, SLUICE_ABANDON_SHED);
}

sluice__qres sluice__overload_pop(struct sluice_pool *p, sluice__worker *w, sluice__task *out)
{
    struct sluice__overload *ov = p->overload;
    for (;;) {
        if (ov->lifo && atomic_load_explicit(&ov->lifo_on, memory_order_relaxed)) {
            /* LIFO: judge the oldest end, serve the newest. */
            uint64_t oldest = p->qops->oldest_ns(p->q);
            if (oldest == 0 && p->qops->depth(p->q) > 0) {
                /* A discipline held its tasks back (the fair queue's
                 * strict running limits): nothing to observe. */
                return p->qops->pop(p->q, out);
            }
            uint64_t now = sluice__timing_now(p);
            sluice__codel_verdict v = look(ov, now, sojourn_of(now, oldest), oldest == 0);
            if (v != SLUICE__CODEL_KEEP) {
                if (p->qops->pop(p->q, out) == SLUICE__Q_OK) {
                    shed(p, w, out);
                }
                if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
                    return SLUICE__Q_EMPTY; /* the drain or destroy hands back the rest */
                }
                continue;
            }
            if (atomic_load_explicit(&ov->lifo_on, memory_order_relaxed)) {
                return p->qops->pop_newest(p->q, out);
            }
            return p->qops->pop(p->q, out);
        }
        /* FIFO: pop the oldest and judge it. */
        sluice__qres r = p->qops->pop(p->q, out);
        uint64_t now = sluice__timing_now(p);
        if (r != SLUICE__Q_OK) {
            /* Empty, unless a discipline held its tasks back (the fair
             * queue's running limits): then there is nothing to observe. */
            if (!atomic_load_explicit(&ov->calm, memory_order_relaxed) && p->qops->depth(p->q) == 0) {
                (void)look(ov, now, 0, true);
            }
            return r;
        }
        uint64_t sojourn = sojourn_of(now, out->enqueue_ns);
        if (sojourn < ov->target_ns && atomic_load_explicit(&ov->calm, memory_order_relaxed)) {
            return SLUICE__Q_OK; /* the common case: no lock */
        }
        if (look(ov, now, sojourn, false) == SLUICE__CODEL_KEEP) {
            return SLUICE__Q_OK;
        }
        shed(p, w, out);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
            return SLUICE__Q_EMPTY;
        }
    }
}
