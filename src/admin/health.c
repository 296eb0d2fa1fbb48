/*
 * src/admin/health.c - /health/live, /health/ready and /health/pools, and
 * the saturation sampler behind /health/ready.
 *
 * Liveness answers from the request thread with no lock at all: it says
 * only that the process serves HTTP. http.c makes sure a liveness request
 * always finds a connection slot (see its essay).
 *
 * Saturation. A sampler thread looks at every pool each sample interval
 * (and each /health/ready request looks too); `sat_since` records when a
 * pool was first seen saturated (running == capacity and queue full) in
 * the current run of observations, on the configured clock, and is reset
 * by the first unsaturated observation. Ready turns 503 once pools whose
 * readiness weights add up to 1 (by default: any one pool) have been
 * saturated for saturation_threshold_ns.
 *
 * The pool check. /health/pools submits one no-op probe task per pool and
 * waits for all of them together, up to the health timeout. Each pool's
 * line also gives its worker start failures when there were any (issue
 * 12.11: thread limits used to be silent). A probe's
 * state is a small heap object with two references (the waiting request,
 * the task); a probe that the pool hands back instead of running comes to
 * probe_abandoned (its own on_abandon), which drops the task's reference
 * and tells the request, so the pool's handler never sees it. A probe is
 * not submitted to a draining pool or a full queue; if the queue fills
 * between that look and the submit, the pool's policy applies to it as to
 * any task (admin.h says what each policy then does). Its submit deadline
 * saturates (sluice__admin_probe_deadline): a health timeout of
 * UINT64_MAX waits for ever, not until a wrapped time already past.
 *
 * Scheduled probes. A pool of a service with a controller that probes it
 * (sluice_service_set_control, config key probe_every) is FAIL in
 * /health/pools while those probes fail, whatever the request's own probe
 * found, and with probe_affects_ready it turns /health/ready 503 too. The
 * service is alive while one of its pools is in our list: its detach
 * waits for pools_lock, which a request holds.
 *
 * Checks. A served service's health checks (sluice_service_add_check: a
 * cluster replica's fallback) add one line each to /health/ready and
 * /health/pools: DEGRADED is shown and keeps 200, FAIL turns 503. They
 * are run under pools_lock (read), which the service's `detached` takes
 * for writing before it forgets the service, so the service outlives
 * every call into it.
 *
 * Lock order: pools_lock (read) -> sat_lock -> pool getters;
 * pools_lock (read) -> a check's own locks (the service holds none
 * across a check: a check that called add_pool would wait for
 * pools_lock (write) in the watcher, service.h says not to); a probe's
 * own mutex is taken with nothing else held but pools_lock.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_internal.h"

/* ---- saturation -------------------------------------------------------------------- */

/* Look at one pool; returns whether it is saturated now and for how long. */
static bool observe(sluice_admin *a, sluice__admin_pool *e, uint64_t now, uint64_t *for_ns)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(e->pool, &st);
    bool sat = st.capacity > 0 && st.running >= st.capacity && st.queue_depth >= st.queue_capacity;
    pthread_mutex_lock(&a->sat_lock);
    if (sat && !e->saturated) {
        e->saturated = true;
        e->sat_since = now;
    } else if (!sat) {
        e->saturated = false;
    }
    *for_ns = sat && now > e->sat_since ? now - e->sat_since : 0;
    pthread_mutex_unlock(&a->sat_lock);
    return sat;
}

void sluice__admin_sample(sluice_admin *a)
{
    pthread_rwlock_rdlock(&a->pools_lock);
    uint64_t now = sluice_clock_now(a->cfg.clock);
    for (size_t i = 0; i < a->pool_count; i++) {
        uint64_t for_ns;
        observe(a, &a->pools[i], now, &for_ns);
    }
    pthread_rwlock_unlock(&a->pools_lock);
}

/* ---- scheduled probes -------------------------------------------------------------- */

/* True when the pool's scheduled probes fail (pools_lock held); *cs filled. */
static bool probe_failing(sluice_admin *a, sluice_pool *pool, sluice_pool_control_stats *cs)
{
    sluice_service *svc =
        atomic_load_explicit(&a->service, memory_order_acquire); /* pairs with attach's store */
    return svc && sluice_service_control_stats(svc, pool, cs) == SLUICE_OK && cs->probes_enabled &&
           !cs->healthy;
}

/* ---- the service's checks ---------------------------------------------------------- */

/* Append a line per check of the served service; false when one fails.
 * Caller holds pools_lock (read). */
static bool run_checks(sluice_admin *a, sluice__sb *b)
{
    sluice_service *svc = atomic_load_explicit(&a->service, memory_order_acquire); /* pairs with attach */
    if (!svc) {
        return true;
    }
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    size_t n = sluice_service_run_checks(svc, res, SLUICE_SERVICE_MAX_CHECKS);
    bool ok = true;
    for (size_t i = 0; i < n && i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        static const char *const word[] = {
            [SLUICE_HEALTH_OK] = "ok",
            [SLUICE_HEALTH_DEGRADED] = "DEGRADED",
            [SLUICE_HEALTH_FAIL] = "FAIL",
        };
        unsigned st =
            (unsigned)res[i].state <= SLUICE_HEALTH_FAIL ? (unsigned)res[i].state : SLUICE_HEALTH_FAIL;
        ok = ok && st != SLUICE_HEALTH_FAIL;
        sluice__sb_printf(b, "%s %s: %s\n", res[i].name, word[st], res[i].line);
    }
    return ok;
}

/* ---- /health/live and /health/ready ----------------------------------------------- */

static int ep_live(sluice_admin *a, struct MHD_Connection *c)
{
    (void)a;
    return sluice__admin_respond_text(c, MHD_HTTP_OK, "live\n");
}

/* The pool's readiness weight in thousandths (the lock order allows the
 * service call: its lock is a leaf). Called with pools_lock held. */
static unsigned ready_weight(sluice_admin *a, const sluice__admin_pool *e)
{
    pthread_mutex_lock(&a->sat_lock);
    int w = e->ready_milli;
    pthread_mutex_unlock(&a->sat_lock);
    if (w >= 0) {
        return (unsigned)w;
    }
    /* The service outlives every pool entry it gave us: pool_removed comes
     * (and takes pools_lock for writing) before the service goes. */
    sluice_service *svc = atomic_load_explicit(&a->service, memory_order_acquire);
    return svc ? sluice_service_readiness_weight(svc, e->pool) : 1000u;
}

static int ep_ready(sluice_admin *a, struct MHD_Connection *c)
{
    sluice__sb b = {0};
    bool ok = true;
    if (!atomic_load_explicit(&a->ready, memory_order_acquire)) { /* pairs with set_ready's store */
        ok = false;
        sluice__sb_puts(&b, "not ready: draining\n");
    }
    pthread_rwlock_rdlock(&a->pools_lock);
    uint64_t now = sluice_clock_now(a->cfg.clock);
    double thr = (double)a->cfg.saturation_threshold_ns / 1e9;
    unsigned over_weight = 0; /* thousandths: the pools past the threshold */
    for (size_t i = 0; i < a->pool_count; i++) {
        uint64_t for_ns;
        const char *name = sluice_pool_name(a->pools[i].pool);
        unsigned w = ready_weight(a, &a->pools[i]);
        char weight[48] = "";
        if (w == 0) {
            snprintf(weight, sizeof weight, ", not gating: readiness weight 0");
        } else if (w < 1000) {
            snprintf(weight, sizeof weight, ", readiness weight %u.%03u", w / 1000, w % 1000);
        }
        sluice_pool_control_stats cs;
        if (probe_failing(a, a->pools[i].pool, &cs) && cs.probe_affects_ready) {
            ok = false; /* probe_affects_ready gates on its own, whatever the weight */
            sluice__sb_printf(&b, "%s probe failing: %s\n", name, cs.probe_error);
        } else if (observe(a, &a->pools[i], now, &for_ns)) {
            bool over = for_ns >= a->cfg.saturation_threshold_ns;
            if (over) {
                over_weight += w;
            }
            sluice__sb_printf(&b, "%s saturated for %.1fs (%s threshold %.1fs%s)\n", name,
                              (double)for_ns / 1e9, over ? "over" : "under", thr, weight);
        } else {
            sluice__sb_printf(&b, "%s ok%s\n", name, weight);
        }
    }
    bool no_pools = b.len == 0; /* ready, and no pool to speak of */
    ok = run_checks(a, &b) && ok;
    pthread_rwlock_unlock(&a->pools_lock);
    if (over_weight >= 1000) {
        ok = false;
    }
    if (no_pools) {
        sluice__sb_puts(&b, "ready: no pools\n");
    }
    return sluice__admin_respond_sb(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                    "text/plain; charset=utf-8", &b);
}

/* ---- /health/pools ---------------------------------------------------------------- */

/* A probe: two references (request, task); the last one frees. */
typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool abandoned;                 /* handed back instead of run */
    sluice_abandon_reason why_back; /* why, when abandoned */
    _Atomic int refs;
} probe;

static void probe_unref(probe *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
}

int sluice__admin_probe_fn(void *arg)
{
    probe *p = arg;
    pthread_mutex_lock(&p->mu);
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
    return 0;
}

/* A probe the pool handed back (drain, destroy, eviction): drop the task's reference. */
static void probe_abandoned(const sluice_abandoned *task)
{
    probe *p = task->arg;
    pthread_mutex_lock(&p->mu);
    p->abandoned = true;
    p->why_back = task->reason;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
}

static probe *probe_new(void)
{
    probe *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    if (sluice__cond_init(&p->cv) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 2);
    return p;
}

/* Submit a probe to one pool, or say why not. */
static probe *probe_submit(sluice_admin *a, sluice_pool *pool, const char **why)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(pool, &st);
    if (st.draining) {
        *why = "draining";
        return NULL;
    }
    if (st.queue_depth >= st.queue_capacity) {
        *why = "queue full"; /* never evict or block real work for a probe */
        return NULL;
    }
    probe *p = probe_new();
    if (!p) {
        *why = "out of memory";
        return NULL;
    }
    sluice_submit_opts o = {0};
    o.label = SLUICE__ADMIN_PROBE_LABEL;
    o.on_abandon = probe_abandoned;
    /* If the queue filled since the look above, a BLOCK pool waits at most
     * the health timeout (on a fake clock, which may never move, not at
     * all: the deadline is already due). */
    const sluice_clock *pc = sluice_pool_clock(pool);
    o.submit_deadline_ns = sluice__admin_probe_deadline(sluice_clock_now(pc), sluice_clock_is_system(pc),
                                                        a->cfg.health_timeout_ns);
    sluice_err r = sluice_pool_submit_ex(pool, sluice__admin_probe_fn, p, &o);
    if (r != SLUICE_OK) {
        probe_unref(p); /* both references: the task never got it */
        probe_unref(p);
        *why = r == SLUICE_ECLOSED ? "draining" : sluice_strerror(r);
        return NULL;
    }
    return p;
}

/* Wait for one probe until `deadline` (CLOCK_MONOTONIC); drops the request's
 * reference. Returns NULL when it ran, else why not. */
static const char *probe_wait(probe *p, const struct timespec *deadline)
{
    pthread_mutex_lock(&p->mu);
    while (!p->done && !p->abandoned) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, deadline) == ETIMEDOUT) {
            break;
        }
    }
    bool done = p->done;
    bool abandoned = p->abandoned;
    sluice_abandon_reason back = p->why_back;
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
    if (abandoned) {
        return back == SLUICE_ABANDON_DROPPED ? "probe evicted by newer work (queue full)" : "draining";
    }
    return done ? NULL : "did not answer in time";
}

static int ep_pools(sluice_admin *a, struct MHD_Connection *c)
{
    probe *probes[SLUICE__ADMIN_MAX_POOLS] = {0};
    const char *why[SLUICE__ADMIN_MAX_POOLS] = {0};
    /* One deadline for the whole check, submits included. */
    struct timespec deadline = sluice__ts_after(CLOCK_MONOTONIC, a->cfg.health_timeout_ns);
    pthread_rwlock_rdlock(&a->pools_lock);
    size_t n = a->pool_count;
    for (size_t i = 0; i < n; i++) {
        probes[i] = probe_submit(a, a->pools[i].pool, &why[i]);
    }
    sluice__sb b = {0};
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = sluice_pool_name(a->pools[i].pool);
        if (probes[i]) {
            why[i] = probe_wait(probes[i], &deadline);
        }
        /* Worker threads that could not be started (thread limits) are
         * said on the pool's line whatever the probe found: a pool that
         * answers with fewer workers than K is degraded, one with none
         * does not answer. */
        sluice_pool_stats st;
        sluice_pool_stats_get(a->pools[i].pool, &st);
        char starts[64] = "";
        if (st.worker_start_failures) {
            snprintf(starts, sizeof starts, " (worker starts failed: %llu)",
                     (unsigned long long)st.worker_start_failures);
        }
        sluice_pool_control_stats cs;
        if (probe_failing(a, a->pools[i].pool, &cs)) {
            ok = false;
            sluice__sb_printf(&b, "%s FAIL: scheduled probe failing (%u in a row): %s%s\n", name,
                              cs.probe_failures_in_row, cs.probe_error, starts);
        } else if (why[i]) {
            ok = false;
            sluice__sb_printf(&b, "%s FAIL: %s%s\n", name, why[i], starts);
        } else {
            sluice__sb_printf(&b, "%s ok%s\n", name, starts);
        }
    }
    ok = run_checks(a, &b) && ok;
    pthread_rwlock_unlock(&a->pools_lock);
    if (n == 0) {
        sluice__sb_puts(&b, "ok: no pools\n");
    }
    return sluice__admin_respond_sb(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                    "text/plain; charset=utf-8", &b);
}

const sluice__admin_route sluice__admin_health_routes[] = {
    {"/health/live", SLUICE__ADMIN_READ, 0, ep_live},
    {"/health/ready", SLUICE__ADMIN_READ, 0, ep_ready},
    {"/health/pools", SLUICE__ADMIN_READ, SLUICE__ROUTE_SLOW, ep_pools},
    {NULL, 0, 0, NULL},
};
