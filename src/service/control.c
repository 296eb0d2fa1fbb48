/*
 * src/service/control.c - the service's control loop: one thread that
 * ticks every pool controller (sluice/control.h) of the service, and the
 * collector that exports what they decided.
 *
 * Purpose. A configured service gets its pools' adaptive limits, auto-tune
 * and scheduled probes without code of its own: sluice_service_set_control
 * (called by the config layer for pools whose file asks for them) makes
 * the controller, and this file runs it and exports it.
 *
 * Design.
 *  - One thread for all controllers, started with the first one. It ticks
 *    each and sleeps until the earliest "next due" they return, at most a
 *    second of real time and at least a millisecond; with a non-system
 *    clock (tests) it re-reads every SLUICE_CLOCK_POLL_NS.
 *  - A controller lives in ctls[] from add to remove (a reload that turns
 *    every control key of its pool off) or destroy. Every use of one -
 *    the thread's tick, a scrape, stats, pin, reconfigure - happens under
 *    sc->mu with the pointer read from ctls[] under that same hold, and
 *    nothing outside this file keeps a pointer to one (stats are copied
 *    out). So remove takes it out of ctls[] under sc->mu, at a moment when
 *    no tick, scrape or lookup is inside it (the thread ticks a whole
 *    round under sc->mu), and frees it after unlocking: no one can reach
 *    it any more. A scrape in flight either ran before the removal (all
 *    of the pool's series) or runs after it (none of them). A probe task
 *    still queued holds its own reference (sluice_pool_control_destroy).
 *  - With no controller left the thread sleeps until an add or destroy
 *    signals it (it is not stopped: a later add reuses it).
 *  - Log lines never reach a user callback under a lock. A controller
 *    logs under its own mutex, and here also under sc->mu (a tick, a
 *    reconfigure, a pin) and the service's control_mu (update_control), so
 *    its log (route_log) only queues a copy of the line, tagged with the
 *    thread that logged it, under log_mu, a leaf. Each thread delivers
 *    its own lines once it holds no lock: the control thread after every
 *    round of ticks, a caller of set/update/remove_control, pin or release
 *    before that call returns (sluice__svc_control_flush, called by
 *    service.c after it let go of control_mu), and destroy whatever is left.
 *    So a log callback may call back into the service (a control call, a
 *    watch) without deadlock, every line reaches its callback in the order
 *    its thread logged it, and a call's lines are delivered before it
 *    returns. A line that cannot be copied (out of memory) is counted and
 *    the count is said by the next delivery.
 *  - The collector writes each family once with a sample per controller:
 *    pool_concurrency_limit, pool_autotune_pinned,
 *    pool_autotune_decisions_total{name,direction,reason} (non-zero series),
 *    pool_probe_duration_seconds, pool_probe_failures_total and
 *    pool_probe_healthy (pools with probes only). A family with no sample
 *    is left out, so a service whose controllers were all removed exports
 *    none of these names.
 *
 * Lock order: the registry's lock (a scrape) -> sc->mu -> a controller's
 * mutex -> the pool's locks, and log_mu (a leaf) under any of them. The
 * thread holds sc->mu while it ticks, so a scrape waits for at most one
 * round of ticks; it delivers its lines after letting go of sc->mu.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errbuf.h"
#include "base/timing.h"
#include "service/control_internal.h"
#include "service/service_internal.h"

/* A controller's log_user: where its lines go once delivered. */
typedef struct ctl_route {
    sluice__svc_control *sc;
    void (*fn)(void *user, const char *line); /* the config's own log; NULL = the service's */
    void *user;
} ctl_route;

/* One line waiting for delivery (see the essay). */
typedef struct ctl_line {
    struct ctl_line *next;
    pthread_t owner; /* the thread that logged it, and will deliver it */
    void (*fn)(void *user, const char *line);
    void *user;
    char text[];
} ctl_line;

typedef struct svc_ctl {
    sluice_pool *pool;
    sluice_pool_control *ctl;
    ctl_route *route; /* freed after ctl */
} svc_ctl;

struct sluice__svc_control {
    sluice_metrics *reg; /* borrowed */
    void (*log)(void *user, const char *line);
    void *log_user;
    bool collector_added;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the thread: stop, or a controller to tick now */
    svc_ctl ctls[SLUICE_SERVICE_MAX_POOLS];
    size_t count;
    bool stop;
    bool kick; /* tick at once (a controller added or reconfigured) */
    bool thread_started;
    pthread_t thread;

    /* A leaf: the lines not yet delivered, oldest first. */
    pthread_mutex_t log_mu;
    ctl_line *log_head, *log_tail;
    unsigned long log_lost; /* lines that could not be copied */
};

/* A controller's log (called under its lock, and maybe sc->mu and the
 * service's control_mu): queue a copy for the calling thread to deliver. */
static void route_log(void *user, const char *line)
{
    ctl_route *rt = user;
    sluice__svc_control *sc = rt->sc;
    size_t n = strlen(line);
    ctl_line *l = malloc(sizeof *l + n + 1);
    if (l) {
        l->next = NULL;
        l->owner = pthread_self();
        l->fn = rt->fn;
        l->user = rt->user;
        memcpy(l->text, line, n + 1);
    }
    pthread_mutex_lock(&sc->log_mu);
    if (!l) {
        sc->log_lost++;
    } else if (sc->log_tail) {
        sc->log_tail->next = l;
        sc->log_tail = l;
    } else {
        sc->log_head = sc->log_tail = l;
    }
    pthread_mutex_unlock(&sc->log_mu);
}

/* Takes the oldest line of the calling thread (any thread's with `all`)
 * off the queue, or NULL. Caller holds log_mu. */
static ctl_line *take_oldest_locked(sluice__svc_control *sc, bool all)
{
    pthread_t self = pthread_self();
    ctl_line *prev = NULL;
    for (ctl_line *l = sc->log_head; l; prev = l, l = l->next) {
        if (all || pthread_equal(l->owner, self)) {
            *(prev ? &prev->next : &sc->log_head) = l->next;
            if (sc->log_tail == l) {
                sc->log_tail = prev;
            }
            l->next = NULL;
            return l;
        }
    }
    return NULL;
}

/* Deliver the calling thread's lines (every thread's with `all`), in the
 * order they were logged. No lock of the service may be held: the
 * callbacks may call back into it. One line at a time, each taken off the
 * queue just before its call: a callback's own call into the service
 * delivers its lines from the same queue, after the ones logged before
 * them (taking the whole batch first let an inner call's line overtake
 * the rest of the batch; log_callback's reentrant_line_keeps_its_place). */
static void deliver(sluice__svc_control *sc, bool all)
{
    pthread_mutex_lock(&sc->log_mu);
    unsigned long lost = sc->log_lost;
    sc->log_lost = 0;
    pthread_mutex_unlock(&sc->log_mu);
    if (lost) {
        char line[96];
        snprintf(line, sizeof line, "control: %lu log line%s lost: out of memory", lost,
                 lost == 1 ? "" : "s");
        sc->log(sc->log_user, line);
    }
    for (;;) {
        pthread_mutex_lock(&sc->log_mu);
        ctl_line *l = take_oldest_locked(sc, all);
        pthread_mutex_unlock(&sc->log_mu);
        if (!l) {
            return;
        }
        if (l->fn) {
            l->fn(l->user, l->text);
        } else {
            sc->log(sc->log_user, l->text);
        }
        free(l);
    }
}

void sluice__svc_control_flush(sluice__svc_control *sc)
{
    if (sc) {
        deliver(sc, false);
    }
}

static void *control_main(void *arg)
{
    sluice__svc_control *sc = arg;
    pthread_mutex_lock(&sc->mu);
    while (!sc->stop) {
        sc->kick = false;
        uint64_t wait_ns = SLUICE_NS_PER_SEC;
        for (size_t i = 0; i < sc->count; i++) {
            sluice_pool_control *c = sc->ctls[i].ctl;
            uint64_t next = sluice_pool_control_tick(c);
            const sluice_clock *clk = sluice_pool_clock(sc->ctls[i].pool);
            if (!sluice_clock_is_system(clk)) {
                wait_ns = SLUICE_CLOCK_POLL_NS;
                continue;
            }
            uint64_t now = sluice_clock_now(clk);
            uint64_t d = next > now ? next - now : 0;
            wait_ns = d < wait_ns ? d : wait_ns;
        }
        /* The round's lines, with no lock held; an add, a reconfigure or
         * a stop meanwhile set kick or stop, so no wake-up is missed. */
        pthread_mutex_unlock(&sc->mu);
        deliver(sc, false);
        pthread_mutex_lock(&sc->mu);
        if (sc->stop || sc->kick) {
            continue;
        }
        if (sc->count == 0) {
            pthread_cond_wait(&sc->cv, &sc->mu); /* an add or destroy signals */
            continue;
        }
        wait_ns = wait_ns < SLUICE_NS_PER_MS ? SLUICE_NS_PER_MS : wait_ns;
        struct timespec until = sluice__ts_after(CLOCK_MONOTONIC, wait_ns);
        pthread_cond_timedwait(&sc->cv, &sc->mu, &until);
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

static void labels1(sluice_metric_label *l, const char *pool)
{
    l[0].name = "name";
    l[0].value = pool;
}

/* The families of n controllers' stats (sc->mu held: names[] are the
 * pools' own names). A family with no sample is not written: none at all
 * with no controller, no probe family when no pool has probes. */
static void write_families(sluice_expo *w, const sluice_pool_control_stats *st, const char *const *names,
                           size_t n)
{
    size_t probed = 0;
    for (size_t i = 0; i < n; i++) {
        probed += st[i].probes_enabled;
    }
    if (n == 0) {
        return;
    }
    sluice_metric_label l[3];
    sluice_expo_family(w, "pool_concurrency_limit", SLUICE_METRIC_GAUGE,
                       "K as the pool's controller last set or saw it.");
    for (size_t i = 0; i < n; i++) {
        labels1(l, names[i]);
        sluice_expo_sample(w, l, 1, st[i].limit);
    }
    sluice_expo_family(w, "pool_autotune_pinned", SLUICE_METRIC_GAUGE,
                       "1 while K is pinned by a manual resize or reload (no auto-tune decisions).");
    for (size_t i = 0; i < n; i++) {
        labels1(l, names[i]);
        sluice_expo_sample(w, l, 1, st[i].pinned ? 1 : 0);
    }
    sluice_expo_family(w, "pool_autotune_decisions_total", SLUICE_METRIC_COUNTER,
                       "Changes of K by the pool's controller, and pins/releases, by direction and reason.");
    for (size_t i = 0; i < n; i++) {
        for (unsigned d = 0; d < SLUICE_CONTROL_DIRECTION_COUNT_; d++) {
            for (unsigned r = 0; r < SLUICE_CONTROL_REASON_COUNT_; r++) {
                if (!st[i].decisions[d][r]) {
                    continue;
                }
                labels1(l, names[i]);
                l[1].name = "direction";
                l[1].value = sluice_control_direction_name((sluice_control_direction)d);
                l[2].name = "reason";
                l[2].value = sluice_control_reason_name((sluice_control_reason)r);
                sluice_expo_sample(w, l, 3, (double)st[i].decisions[d][r]);
            }
        }
    }
    if (probed == 0) {
        return;
    }
    sluice_expo_family(w, "pool_probe_duration_seconds", SLUICE_METRIC_HISTOGRAM,
                       "Time from submit to run of the scheduled no-op probe task (successful probes).");
    for (size_t i = 0; i < n; i++) {
        if (st[i].probes_enabled) {
            labels1(l, names[i]);
            sluice_expo_histogram(w, l, 1, &st[i].probe_hist);
        }
    }
    sluice_expo_family(w, "pool_probe_failures_total", SLUICE_METRIC_COUNTER,
                       "Scheduled probes that failed: refused, handed back, or not run within the timeout.");
    for (size_t i = 0; i < n; i++) {
        if (st[i].probes_enabled) {
            labels1(l, names[i]);
            sluice_expo_sample(w, l, 1, (double)st[i].probe_failures);
        }
    }
    sluice_expo_family(w, "pool_probe_healthy", SLUICE_METRIC_GAUGE,
                       "0 while the pool's scheduled probes fail, else 1.");
    for (size_t i = 0; i < n; i++) {
        if (st[i].probes_enabled) {
            labels1(l, names[i]);
            sluice_expo_sample(w, l, 1, st[i].healthy ? 1 : 0);
        }
    }
}

/* The registry's collector: under sc->mu for the whole write, so a
 * controller removed meanwhile is either wholly in this scrape or not. */
static void collect(sluice_expo *w, void *user)
{
    sluice__svc_control *sc = user;
    pthread_mutex_lock(&sc->mu);
    size_t n = sc->count;
    sluice_pool_control_stats *st = calloc(n ? n : 1, sizeof *st);
    if (st) {
        const char *names[SLUICE_SERVICE_MAX_POOLS];
        for (size_t i = 0; i < n; i++) {
            sluice_pool_control_stats_get(sc->ctls[i].ctl, &st[i]);
            names[i] = sluice_pool_name(sc->ctls[i].pool);
        }
        write_families(w, st, names, n);
    }
    pthread_mutex_unlock(&sc->mu);
    free(st);
}

sluice__svc_control *sluice__svc_control_new(sluice_metrics *reg, void (*log)(void *user, const char *line),
                                             void *log_user)
{
    sluice__svc_control *sc = calloc(1, sizeof *sc);
    if (!sc) {
        return NULL;
    }
    pthread_mutex_init(&sc->mu, NULL);
    pthread_mutex_init(&sc->log_mu, NULL);
    if (sluice__cond_init(&sc->cv) != 0) {
        pthread_mutex_destroy(&sc->log_mu);
        pthread_mutex_destroy(&sc->mu);
        free(sc);
        return NULL;
    }
    sc->reg = reg;
    sc->log = log;
    sc->log_user = log_user;
    return sc;
}

sluice_err sluice__svc_control_add(sluice__svc_control *sc, sluice_pool *pool,
                                   const sluice_pool_control_config *cfg, bool update, char *errbuf,
                                   size_t errlen)
{
    pthread_mutex_lock(&sc->mu);
    for (size_t i = 0; i < sc->count; i++) {
        if (sc->ctls[i].pool == pool) {
            sluice_err r = SLUICE_EBUSY;
            if (update) {
                r = sluice_pool_control_reconfigure(sc->ctls[i].ctl, cfg, errbuf, errlen);
                sc->kick = true;
                pthread_cond_signal(&sc->cv); /* tick it now: the interval may be shorter */
            } else {
                sluice__errf(errbuf, errlen, "pool %s: already has a controller", sluice_pool_name(pool));
            }
            pthread_mutex_unlock(&sc->mu);
            return r;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    /* Its lines, the service's or its config's own log, are delivered
     * with no lock held (route_log). */
    ctl_route *route = malloc(sizeof *route);
    if (!route) {
        sluice__errf(errbuf, errlen, "pool %s: out of memory", sluice_pool_name(pool));
        return SLUICE_ENOMEM;
    }
    route->sc = sc;
    route->fn = cfg->log;
    route->user = cfg->log_user;
    sluice_pool_control_config c = *cfg;
    c.log = route_log;
    c.log_user = route;
    sluice_pool_control *ctl = NULL;
    sluice_err r = sluice_pool_control_create(pool, &c, &ctl, errbuf, errlen);
    if (r != SLUICE_OK) {
        free(route);
        return r;
    }
    if (!sc->collector_added) {
        r = sluice_metrics_add_collector(sc->reg, collect, sc);
        if (r != SLUICE_OK) {
            sluice_pool_control_destroy(ctl);
            free(route);
            sluice__errf(errbuf, errlen, "control: cannot export its metrics: %s", sluice_strerror(r));
            return r;
        }
        sc->collector_added = true;
    }
    pthread_mutex_lock(&sc->mu);
    if (!sc->thread_started) {
        int e = sluice__service_spawn(&sc->thread, control_main, sc, "control");
        if (e != 0) {
            pthread_mutex_unlock(&sc->mu);
            sluice_pool_control_destroy(ctl);
            free(route);
            sluice__errf(errbuf, errlen, "control: cannot start its thread: %s", strerror(e));
            return SLUICE_ESYS;
        }
        sc->thread_started = true;
    }
    sc->ctls[sc->count].pool = pool;
    sc->ctls[sc->count].ctl = ctl;
    sc->ctls[sc->count].route = route;
    sc->count++;
    sc->kick = true;
    pthread_cond_signal(&sc->cv); /* tick the new one now */
    pthread_mutex_unlock(&sc->mu);
    return SLUICE_OK;
}

/* The controller of pool, or NULL (sc->mu held). */
static sluice_pool_control *find(sluice__svc_control *sc, const sluice_pool *pool)
{
    for (size_t i = 0; i < sc->count; i++) {
        if (sc->ctls[i].pool == pool) {
            return sc->ctls[i].ctl;
        }
    }
    return NULL;
}

sluice_err sluice__svc_control_remove(sluice__svc_control *sc, const sluice_pool *pool)
{
    if (!sc) {
        return SLUICE_ENOENT;
    }
    sluice_pool_control *gone = NULL;
    ctl_route *route = NULL;
    pthread_mutex_lock(&sc->mu);
    for (size_t i = 0; i < sc->count; i++) {
        if (sc->ctls[i].pool == pool) {
            gone = sc->ctls[i].ctl;
            route = sc->ctls[i].route;
            /* Keep the others in the order they were added (the order
             * of their samples in a scrape). */
            memmove(&sc->ctls[i], &sc->ctls[i + 1], (sc->count - i - 1) * sizeof sc->ctls[0]);
            sc->count--;
            sc->ctls[sc->count].pool = NULL;
            sc->ctls[sc->count].ctl = NULL;
            sc->ctls[sc->count].route = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    /* Out of ctls[] under sc->mu: nothing can reach it now (see the essay).
     * Its queued lines hold copies of the route's fields, not the route. */
    sluice_pool_control_destroy(gone);
    free(route);
    return gone ? SLUICE_OK : SLUICE_ENOENT;
}

sluice_err sluice__svc_control_stats(sluice__svc_control *sc, const sluice_pool *pool,
                                     sluice_pool_control_stats *out)
{
    if (!sc) {
        return SLUICE_ENOENT;
    }
    pthread_mutex_lock(&sc->mu);
    sluice_pool_control *c = find(sc, pool);
    if (c) {
        sluice_pool_control_stats_get(c, out);
    }
    pthread_mutex_unlock(&sc->mu);
    return c ? SLUICE_OK : SLUICE_ENOENT;
}

sluice_err sluice__svc_control_pin(sluice__svc_control *sc, const sluice_pool *pool, bool pin, unsigned k)
{
    if (!sc) {
        return SLUICE_ENOENT;
    }
    pthread_mutex_lock(&sc->mu);
    sluice_pool_control *c = find(sc, pool);
    sluice_err r = SLUICE_ENOENT;
    if (c) {
        r = pin ? sluice_pool_control_pin(c, k) : sluice_pool_control_release(c);
    }
    pthread_mutex_unlock(&sc->mu);
    return r;
}

void sluice__svc_control_destroy(sluice__svc_control *sc)
{
    if (!sc) {
        return;
    }
    if (sc->collector_added) {
        sluice_metrics_remove_collector(sc->reg, collect, sc);
    }
    pthread_mutex_lock(&sc->mu);
    sc->stop = true;
    pthread_cond_broadcast(&sc->cv);
    bool joined = sc->thread_started;
    pthread_mutex_unlock(&sc->mu);
    if (joined) {
        pthread_join(sc->thread, NULL);
    }
    for (size_t i = 0; i < sc->count; i++) {
        sluice_pool_control_destroy(sc->ctls[i].ctl);
        free(sc->ctls[i].route);
    }
    /* Every thread delivers its own lines before it returns, so this is
     * what nobody could (none, but for a count of lost ones). */
    deliver(sc, true);
    pthread_cond_destroy(&sc->cv);
    pthread_mutex_destroy(&sc->log_mu);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}
