/*
 * src/service/service.c - the service object: a service's pools, each
 * registered once for metrics, lifecycle and watchers (the admin server).
 *
 * Purpose. Every service built on Sluice did the same wiring by hand:
 * create a pool, export it to the registry, give it to the admin server,
 * add it to the lifecycle, and on every error path undo those steps in
 * the reverse order (the demo repeated that ladder three times). Here the
 * wiring happens in one call (sluice_service_add_pool) and the teardown in
 * one (sluice_service_destroy), in an order that is written down once.
 *
 * Design.
 *  - The service sits above the core and obs (it uses the pool and the
 *    registry) and below config and admin, which use it: config builds a
 *    service from a file, admin serves one. It never calls upward; the
 *    admin learns of pools through the watcher interface.
 *  - The pool list is a fixed array (the lifecycle's report bounds it) that
 *    only grows until destroy, so a pool pointer handed out stays valid
 *    until destroy and readers need the lock only to read the array.
 *  - Watchers are told through an event queue, with no lock held during
 *    a watcher call (see "Watchers" below).
 *  - The lifecycle is created with the service as its `user`; small
 *    trampolines pass each callback on to the service's own user, and
 *    readiness goes through sluice_service_set_ready so the watchers hear
 *    step 1 of the shutdown.
 *
 * Ordering guarantees: a pool is in the registry and the lifecycle before
 * any watcher hears pool_added; at destroy every watcher hears
 * pool_removed (while the pool lives) before the pool leaves the registry,
 * and the pool leaves the registry before it is destroyed.
 *
 * Watchers. They used to be called under watch_mu, so a watcher could
 * not call add_pool, set_ready, watch or unwatch (deadlock), and one slow
 * watcher held up every call that took watch_mu, set_control among them.
 * Now every change that watchers hear is an event:
 *  1. A notifier (add_pool, set_ready, watch) changes the state and posts
 *     its event in one hold of watch_mu: seq numbers give the order of
 *     changes. A broadcast event goes to the watchers whose id is at most
 *     `upto` (those there when it was posted); watch posts a replay for
 *     its new watcher alone (the pools and readiness as of that hold), so
 *     a watcher hears each change exactly once: by replay or by event.
 *  2. One thread at a time holds the deliverer's role (delivering,
 *     deliverer). It takes the oldest event, drops watch_mu for each call
 *     (calling = the watcher's id) and looks the next watcher up by id
 *     after it, since the list may change during a call. One deliverer
 *     and one queue give each watcher its events in seq order, one call
 *     at a time, never nested.
 *  3. A notifier waits until ev_delivered reaches its seq. When no thread
 *     delivers, it takes the role and delivers the queue up to its own
 *     event (deliver_until), then hands the role on (broadcast): a waiter
 *     with a later event takes it. Its event's node lives on its stack:
 *     the deliverer copies a node when it takes it, before the poster can
 *     return.
 *  4. A notifier on the deliverer's thread is called from inside a
 *     watcher call: it cannot wait for itself, so it posts a heap node,
 *     raises deliver_until to it and returns; the drain loop it runs in
 *     tells it when the call returns. Out of memory: add_pool and watch
 *     fail whole (the node is taken before anything is done); set_ready
 *     sets ready_resync and the drain, once the queue is empty, tells the
 *     current readiness to each watcher whose last word (told_ready)
 *     differs: late but not lost.
 *  5. unwatch erases the watcher at once (no call starts to it) and waits
 *     on watch_cv while `calling` is its id, unless this thread is the
 *     deliverer: then the call in progress is the one it runs inside.
 *  6. destroy sets closing (no event is posted after), lets the queue
 *     drain, then takes the role itself to tell each watcher pool_removed
 *     and detached, so the calls a watcher makes from there are "inside a
 *     call" too.
 * add_mu serialises add_pool's checks through its insert (never held
 * while waiting for a delivery); control_mu serialises set/update/
 * remove_control, which watch_mu used to.
 *
 * Health checks (sluice_service_add_check) have their own lock, check_mu,
 * a leaf never held across a check call, so a check may call back into
 * the service (add_check and remove_check included: it deadlocked on
 * check_mu when they were called under it). run_checks marks each check
 * it runs (a count per check, under check_mu), calls it with no lock, and
 * unmarks it; remove_check takes the check off the list at once (no run
 * starts it again) and waits on check_cv until no run of it is left,
 * which keeps its promise that the check is not running when it returns.
 * From inside a check of the same service (check_frames: per thread, and
 * per service within it) it does not wait: the check removing itself
 * would wait for itself, and two checks removing each other on two
 * threads for each other. Inside a check of another service it waits as
 * anywhere (a per-thread depth, as it was, let a check of service A
 * remove a check of B still running elsewhere and free its user under
 * it). A removed check's record stays until its last run ends. An admin
 * request calls them under its pools_lock.
 *
 * Log lines reach cfg.log with no service lock held, so a log callback
 * may call back into the service. The lifecycle logs holding none; the
 * controllers log under their locks (and a reconfigure under control_mu),
 * so control.c queues their lines and each thread delivers its own once
 * it holds no lock: the control thread after each round of ticks, a
 * caller of set/update/remove_control, pin or release before the call
 * returns (sluice__svc_control_flush after control_mu is let go).
 *
 * Lock order: add_mu -> watch_mu -> mu -> (pool and registry locks);
 * add_mu -> (pool creation, registry, lifecycle); control_mu -> (control.c);
 * admin pools_lock -> (a check's own locks); check_mu is a leaf. mu is
 * never held across a call into a pool, the registry, the lifecycle or a
 * watcher; watch_mu is never held across a watcher call, a pool's
 * creation or a log callback (a notifier waits on watch_cv, which lets it
 * go). No service lock is held across a watcher, check or log call.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "base/check.h"
#include "base/errbuf.h"
#include "service/control_internal.h"
#include "service/service_internal.h"
#include "sluice/service.h"

typedef struct svc_pool {
    sluice_pool *pool;
    bool in_registry;     /* we exported it (a borrowed registry may have had it) */
    unsigned ready_milli; /* readiness weight in thousandths (set_readiness_weight) */
} svc_pool;

/* A watcher and its id (unique per watch: 1, 2, ... in the order added). */
typedef struct svc_watcher {
    sluice_service_watcher w;
    uint64_t id;
    bool told_ready; /* the last readiness it heard (ready_resync) */
} svc_watcher;

/* One change to tell the watchers (see the essay). */
typedef enum svc_event_kind {
    EV_POOL_ADDED, /* pool_added(pool) to every watcher added before it */
    EV_READY,      /* ready_changed(ready) to every watcher added before it */
    EV_REPLAY, /* to watcher `to` only: pool_added for pools[0, replay_pools), then ready_changed(ready) */
} svc_event_kind;

typedef struct svc_event {
    struct svc_event *next; /* the queue, oldest first */
    uint64_t seq;           /* 1, 2, ... in the order posted */
    svc_event_kind kind;
    sluice_pool *pool;
    bool ready;
    size_t replay_pools;
    uint64_t to;   /* EV_REPLAY: its watcher's id */
    uint64_t upto; /* the others: the last watcher id when posted */
    bool heap;     /* posted from inside a callback: malloc'd, the deliverer frees it */
} svc_event;

struct sluice_service {
    sluice_service_config cfg; /* immutable after create */
    char name[SLUICE_SERVICE_NAME_MAX + 1];
    sluice_lifecycle *lc; /* immutable after create */
    sluice_metrics *metrics;
    bool own_metrics;
    /* The pools' controllers and their thread (control.c); made at create,
     * immutable pointer, its own lock. */
    sluice__svc_control *control;

    /* Serialises add_pool (the name and count checks through the insert),
     * never held while waiting for a delivery. */
    pthread_mutex_t add_mu;
    /* Serialises set/update/remove_control (control.c's add and remove). */
    pthread_mutex_t control_mu;

    /* The watchers and their event queue (see the essay). Never held
     * across a watcher call. watch_cv: an event was delivered, a watcher
     * call ended, or the deliverer's role came free. */
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    /* Guarded by watch_mu. */
    svc_watcher watchers[SLUICE_SERVICE_MAX_WATCHERS]; /* in the order added */
    size_t watcher_count;
    uint64_t watcher_ids;             /* the last id given */
    svc_event *ev_head, *ev_tail;     /* posted, not yet taken by the deliverer */
    uint64_t ev_posted, ev_delivered; /* seqs: the last posted, the last whose delivery ended */
    bool delivering;                  /* a thread holds the deliverer's role */
    pthread_t deliverer;              /* that thread (while delivering) */
    uint64_t deliver_until;           /* it delivers the events up to this seq */
    uint64_t calling;                 /* the id of the watcher in a call now; 0 = none */
    bool closing;                     /* destroy began: no watch, no event */
    bool ready_resync;                /* a ready_changed could not be queued (ENOMEM) */

    /* A leaf: guards the fields below, never held across a call out. */
    pthread_mutex_t mu;
    svc_pool pools[SLUICE_SERVICE_MAX_POOLS];
    size_t pool_count;
    bool ready;
    bool run_called;

    /* A leaf: guards the checks below, never held across a check call (see
     * the essay). check_cv: a run ended (remove_check waits on it). */
    pthread_mutex_t check_mu;
    pthread_cond_t check_cv;
    struct {
        char name[SLUICE_SERVICE_CHECK_NAME_MAX + 1];
        sluice_health_fn fn;
        void *user;
        uint64_t id;      /* unique per add_check: the record of a run */
        unsigned running; /* runs in progress, on any thread */
        bool removed;     /* remove_check took it: kept until running is 0 */
    } checks[SLUICE_SERVICE_MAX_CHECKS];
    size_t check_count; /* records, removed ones waiting for their runs included */
    uint64_t check_ids;
};

/* The checks the calling thread is inside, innermost first: one frame
 * (on run_checks' stack) per check call in progress on this thread. A
 * check that runs the checks, of its own service or of another, nests.
 * remove_check does not wait when a frame of its own service is here (see
 * the essay); a frame of another service does not count: the check it
 * would wait for belongs to a service this thread is not inside, so
 * waiting cannot be waiting for itself, and not waiting would free the
 * user of a check still running on another thread. */
typedef struct check_frame {
    const sluice_service *svc;
    struct check_frame *outer;
} check_frame;
static _Thread_local check_frame *check_frames;

static bool in_check_of(const sluice_service *svc)
{
    for (const check_frame *f = check_frames; f; f = f->outer) {
        if (f->svc == svc) {
            return true;
        }
    }
    return false;
}

/* ---- lifecycle trampolines: the lifecycle's user is the service ------- */

static void tr_set_ready(void *user, bool ready)
{
    sluice_service_set_ready(user, ready);
}

static void tr_stop_producers(void *user)
{
    sluice_service *svc = user;
    svc->cfg.stop_producers(svc->cfg.user);
}

static void tr_reload(void *user)
{
    sluice_service *svc = user;
    svc->cfg.reload(svc->cfg.user);
}

static void tr_log(void *user, const char *line)
{
    sluice_service *svc = user;
    svc->cfg.log(svc->cfg.user, line);
}

/* Controllers' decision and probe lines go to the service's log. */
static void control_log(void *user, const char *line)
{
    sluice_service *svc = user;
    if (svc->cfg.log) {
        svc->cfg.log(svc->cfg.user, line);
    } else {
        fprintf(stderr, "sluice: %s\n", line);
    }
}

static void tr_force_exit(void *user, int signo)
{
    sluice_service *svc = user;
    svc->cfg.on_force_exit(svc->cfg.user, signo);
}

/* The locks and the object (create's error paths, destroy's end). */
static void free_service(sluice_service *svc)
{
    pthread_mutex_destroy(&svc->add_mu);
    pthread_mutex_destroy(&svc->control_mu);
    pthread_mutex_destroy(&svc->watch_mu);
    pthread_cond_destroy(&svc->watch_cv);
    pthread_mutex_destroy(&svc->mu);
    pthread_mutex_destroy(&svc->check_mu);
    pthread_cond_destroy(&svc->check_cv);
    free(svc);
}

void sluice_service_config_init(sluice_service_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_service_create(const sluice_service_config *cfg, sluice_service **out, char *errbuf,
                                 size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "service: %s is NULL", cfg ? "out" : "cfg");
        return SLUICE_EINVAL;
    }
    const char *name = cfg->name ? cfg->name : "service";
    if (strlen(name) > SLUICE_SERVICE_NAME_MAX) {
        sluice__errf(errbuf, errlen, "service: name is %zu bytes, at most %d", strlen(name),
                     SLUICE_SERVICE_NAME_MAX);
        return SLUICE_EINVAL;
    }
    sluice_service *svc = calloc(1, sizeof *svc);
    if (!svc) {
        sluice__errf(errbuf, errlen, "service %s: out of memory", name);
        return SLUICE_ENOMEM;
    }
    svc->cfg = *cfg;
    snprintf(svc->name, sizeof svc->name, "%s", name);
    svc->cfg.name = svc->name;
    pthread_mutex_init(&svc->add_mu, NULL);
    pthread_mutex_init(&svc->control_mu, NULL);
    pthread_mutex_init(&svc->watch_mu, NULL);
    pthread_cond_init(&svc->watch_cv, NULL);
    pthread_mutex_init(&svc->mu, NULL);
    pthread_mutex_init(&svc->check_mu, NULL);
    pthread_cond_init(&svc->check_cv, NULL);
    if (cfg->metrics) {
        svc->metrics = cfg->metrics;
    } else {
        sluice_err r = sluice_metrics_create(NULL, &svc->metrics);
        if (r != SLUICE_OK) {
            sluice__errf(errbuf, errlen, "service %s: cannot create its metrics registry: %s", name,
                         sluice_strerror(r));
            free_service(svc);
            return r;
        }
        svc->own_metrics = true;
    }
    svc->control = sluice__svc_control_new(svc->metrics, control_log, svc);
    if (!svc->control) {
        sluice__errf(errbuf, errlen, "service %s: out of memory", name);
        if (svc->own_metrics) {
            sluice_metrics_destroy(svc->metrics);
        }
        free_service(svc);
        return SLUICE_ENOMEM;
    }
    sluice_lifecycle_config lcfg = {
        .shutdown_grace_ns = cfg->shutdown_grace_ns,
        .drain_budget_ns = cfg->drain_budget_ns,
        .set_ready = tr_set_ready,
        .stop_producers = cfg->stop_producers ? tr_stop_producers : NULL,
        .reload = cfg->reload ? tr_reload : NULL,
        .log = cfg->log ? tr_log : NULL,
        .on_force_exit = cfg->on_force_exit ? tr_force_exit : NULL,
        .user = svc,
        .force_exit_code = cfg->force_exit_code,
        .no_signals = cfg->no_signals,
        .clock = cfg->clock,
    };
    sluice_err r = sluice_lifecycle_start(&lcfg, &svc->lc);
    if (r != SLUICE_OK) {
        sluice__errf(errbuf, errlen, "service %s: cannot start the lifecycle's signal and reload threads: %s",
                     name, sluice_strerror(r));
        sluice__svc_control_destroy(svc->control);
        if (svc->own_metrics) {
            sluice_metrics_destroy(svc->metrics);
        }
        free_service(svc);
        return r;
    }
    *out = svc;
    return SLUICE_OK;
}

/* ---- watchers: an event queue, delivered with no service lock held ------ */

sluice__alloc_fn sluice__service_event_alloc = malloc;

/* Whether the calling thread holds the deliverer's role: it is inside a
 * watcher call of this service (or in destroy's step 2). */
static bool on_deliverer(const sluice_service *svc)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    return svc->delivering && pthread_equal(svc->deliverer, pthread_self());
}

static ssize_t watcher_by_id(const sluice_service *svc, uint64_t id)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    for (size_t i = 0; i < svc->watcher_count; i++) {
        if (svc->watchers[i].id == id) {
            return (ssize_t)i;
        }
    }
    return -1;
}

static void watcher_erase(sluice_service *svc, size_t i)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    memmove(&svc->watchers[i], &svc->watchers[i + 1], (svc->watcher_count - i - 1) * sizeof svc->watchers[0]);
    svc->watcher_count--;
}

/* The i-th pool (i < pool_count: the slot is written once, before). */
static sluice_pool *pool_at(sluice_service *svc, size_t i)
{
    pthread_mutex_lock(&svc->mu);
    sluice_pool *p = i < svc->pool_count ? svc->pools[i].pool : NULL;
    pthread_mutex_unlock(&svc->mu);
    return p;
}

/* The node of an event the calling thread is about to post (watch_mu
 * held): `local` when the thread will wait for its delivery (the
 * deliverer copies a node when it takes it, under watch_mu, before the
 * poster can return), else a heap node: posted from inside a watcher
 * call, the caller returns before it is delivered. NULL: out of memory. */
static svc_event *event_node(sluice_service *svc, svc_event *local)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    memset(local, 0, sizeof *local);
    if (!on_deliverer(svc)) {
        return local;
    }
    svc_event *ev = sluice__service_event_alloc(sizeof *ev);
    if (ev) {
        memset(ev, 0, sizeof *ev);
        ev->heap = true;
    }
    return ev;
}

/* Append ev to the queue (watch_mu held); returns its seq. */
static uint64_t post(sluice_service *svc, svc_event *ev)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    SLUICE__ASSERT(!svc->closing);
    ev->seq = ++svc->ev_posted;
    ev->next = NULL;
    if (ev->kind != EV_REPLAY) {
        ev->upto = svc->watcher_ids; /* watchers added later hear it in their replay, not here */
    }
    if (svc->ev_tail) {
        svc->ev_tail->next = ev;
    } else {
        svc->ev_head = ev;
    }
    svc->ev_tail = ev;
    if (on_deliverer(svc)) {
        /* From inside a watcher call: this thread delivers it too, after
         * the call in progress returns. */
        svc->deliver_until = ev->seq;
    }
    return ev->seq;
}

typedef enum svc_call { CALL_POOL_ADDED, CALL_POOL_REMOVED, CALL_READY, CALL_DETACHED } svc_call;

/* One call to watcher `id`, if it is still there (watch_mu held, let go
 * for the call itself). `calling` names it meanwhile, so an unwatch on
 * another thread waits for the call to end. Returns false when the
 * watcher is gone (unwatched). */
static bool call_watcher(sluice_service *svc, uint64_t id, svc_call what, sluice_pool *pool, bool ready)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    SLUICE__ASSERT(on_deliverer(svc));
    ssize_t at = watcher_by_id(svc, id);
    if (at < 0) {
        return false;
    }
    const sluice_service_watcher w = svc->watchers[at].w;
    if (what == CALL_READY) {
        svc->watchers[at].told_ready = ready;
    }
    if ((what == CALL_POOL_ADDED && !w.pool_added) || (what == CALL_POOL_REMOVED && !w.pool_removed) ||
        (what == CALL_READY && !w.ready_changed) || (what == CALL_DETACHED && !w.detached)) {
        return true;
    }
    svc->calling = id;
    pthread_mutex_unlock(&svc->watch_mu);
    switch (what) {
    case CALL_POOL_ADDED:
        w.pool_added(w.user, pool);
        break;
    case CALL_POOL_REMOVED:
        w.pool_removed(w.user, pool);
        break;
    case CALL_READY:
        w.ready_changed(w.user, ready);
        break;
    case CALL_DETACHED:
        w.detached(w.user);
        break;
    }
    pthread_mutex_lock(&svc->watch_mu);
    svc->calling = 0;
    pthread_cond_broadcast(&svc->watch_cv); /* an unwatch waiting for this call */
    return true;
}

/* Tell ev to its watchers (watch_mu held, the deliverer's role taken).
 * The list may change during each call, so the next watcher is looked up
 * by id: watchers are kept in the order added, which is the order of
 * their ids. `stale_only`: skip those that last heard ev->ready. */
static void deliver(sluice_service *svc, const svc_event *ev, bool stale_only)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    if (ev->kind == EV_REPLAY) {
        bool there = true;
        for (size_t i = 0; there && i < ev->replay_pools; i++) {
            there = call_watcher(svc, ev->to, CALL_POOL_ADDED, pool_at(svc, i), false);
        }
        if (there) {
            call_watcher(svc, ev->to, CALL_READY, NULL, ev->ready);
        }
        return;
    }
    uint64_t last = 0;
    for (;;) {
        uint64_t next = 0;
        for (size_t i = 0; i < svc->watcher_count && !next; i++) {
            const svc_watcher *w = &svc->watchers[i];
            if (w->id > last && w->id <= ev->upto && !(stale_only && w->told_ready == ev->ready)) {
                next = w->id;
            }
        }
        if (!next) {
            return;
        }
        last = next;
        call_watcher(svc, next, ev->kind == EV_READY ? CALL_READY : CALL_POOL_ADDED, ev->pool, ev->ready);
    }
}

/* Deliver the queued events in order, up to deliver_until (watch_mu held,
 * the deliverer's role taken). Events posted by the calls it makes raise
 * deliver_until, so they are delivered too before it returns. */
static void drain(sluice_service *svc)
{
    SLUICE__ASSERT(on_deliverer(svc));
    for (;;) {
        while (svc->ev_head && svc->ev_head->seq <= svc->deliver_until) {
            svc_event *node = svc->ev_head;
            svc->ev_head = node->next;
            if (!svc->ev_head) {
                svc->ev_tail = NULL;
            }
            svc_event ev = *node; /* a local node's poster may return once ev_delivered passes it */
            if (node->heap) {
                free(node);
            }
            deliver(svc, &ev, false);
            svc->ev_delivered = ev.seq;
            pthread_cond_broadcast(&svc->watch_cv); /* the posters waiting for it */
        }
        if (svc->ev_head || !svc->ready_resync) {
            return;
        }
        /* A set_ready inside a watcher call found no memory for its event:
         * tell the readiness now to each watcher whose last word differs. */
        svc->ready_resync = false;
        pthread_mutex_lock(&svc->mu);
        svc_event ev = {.kind = EV_READY, .ready = svc->ready, .upto = svc->watcher_ids};
        pthread_mutex_unlock(&svc->mu);
        deliver(svc, &ev, true);
    }
}

/* Return once event `seq` has been delivered (watch_mu held): deliver it,
 * and those before it, when no other thread delivers; else wait for the
 * one that does. From inside a watcher call it returns at once: this
 * thread delivers it when that call returns (post raised deliver_until). */
static void await_delivery(sluice_service *svc, uint64_t seq)
{
    SLUICE__ASSERT_HELD(&svc->watch_mu);
    if (on_deliverer(svc)) {
        return;
    }
    while (svc->ev_delivered < seq) {
        if (svc->delivering) {
            pthread_cond_wait(&svc->watch_cv, &svc->watch_mu);
            continue;
        }
        svc->delivering = true;
        svc->deliverer = pthread_self();
        svc->deliver_until = seq;
        drain(svc);
        svc->delivering = false;
        pthread_cond_broadcast(&svc->watch_cv); /* a poster of a later event takes the role */
    }
}

static ssize_t find_locked(const sluice_service *svc, const sluice_pool *pool, const char *name)
{
    SLUICE__ASSERT_HELD(&svc->mu);
    for (size_t i = 0; i < svc->pool_count; i++) {
        if (svc->pools[i].pool == pool || (name && strcmp(sluice_pool_name(svc->pools[i].pool), name) == 0)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

sluice_err sluice_service_add_pool(sluice_service *svc, const sluice_pool_config *pool_cfg,
                                   uint64_t drain_timeout_ns, sluice_pool **out, char *errbuf, size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!svc || !pool_cfg) {
        sluice__errf(errbuf, errlen, "service: add_pool: %s is NULL", svc ? "pool_cfg" : "svc");
        return SLUICE_EINVAL;
    }
    const char *name = pool_cfg->name ? pool_cfg->name : "";
    pthread_mutex_lock(&svc->add_mu);
    /* The event's node first: nothing after the lifecycle's add can be
     * undone. From inside a watcher call it is a heap node. */
    svc_event local, *ev = NULL;
    pthread_mutex_lock(&svc->watch_mu);
    bool closing = svc->closing;
    if (!closing) {
        ev = event_node(svc, &local);
    }
    pthread_mutex_unlock(&svc->watch_mu);
    /* During destroy's step 2 (a watcher's pool_removed calling here) the
     * lifecycle is gone: closing answers first. */
    bool stopping = closing || sluice_lifecycle_stopping(svc->lc);
    pthread_mutex_lock(&svc->mu);
    sluice_err r = SLUICE_OK;
    if (stopping) {
        sluice__errf(errbuf, errlen, "service %s: pool %s: %s", svc->name, name,
                     closing ? "the service is being destroyed" : "the shutdown has begun");
        r = SLUICE_EBUSY;
    } else if (find_locked(svc, NULL, name) >= 0) {
        sluice__errf(errbuf, errlen, "service %s: a pool named \"%s\" is already registered", svc->name,
                     name);
        r = SLUICE_EBUSY;
    } else if (svc->pool_count == SLUICE_SERVICE_MAX_POOLS) {
        sluice__errf(errbuf, errlen, "service %s: pool %s: already %d pools, the most one service holds",
                     svc->name, name, SLUICE_SERVICE_MAX_POOLS);
        r = SLUICE_EOVERFLOW;
    } else if (!ev) {
        sluice__errf(errbuf, errlen, "service %s: pool %s: out of memory", svc->name, name);
        r = SLUICE_ENOMEM;
    }
    pthread_mutex_unlock(&svc->mu);

    sluice_pool *pool = NULL;
    if (r == SLUICE_OK) {
        r = sluice_pool_create(pool_cfg, &pool, errbuf, errlen);
    }
    /* The registry: EBUSY means a borrowed registry already exports a pool
     * of that name (the caller's own doing): refuse, as a second pool of
     * one name would be unreadable in every dashboard. */
    if (r == SLUICE_OK && (r = sluice_metrics_add_pool(svc->metrics, pool)) != SLUICE_OK) {
        sluice__errf(errbuf, errlen, "service %s: pool %s: the metrics registry refused it: %s", svc->name,
                     name,
                     r == SLUICE_EBUSY ? "a pool of that name is already exported" : sluice_strerror(r));
        sluice_pool_destroy(pool);
    } else if (r == SLUICE_OK &&
               (r = sluice_lifecycle_add_pool(svc->lc, pool, drain_timeout_ns)) != SLUICE_OK) {
        sluice__errf(errbuf, errlen, "service %s: pool %s: %s", svc->name, name,
                     r == SLUICE_EBUSY ? "the shutdown has begun" : sluice_strerror(r));
        sluice_metrics_remove_pool(svc->metrics, pool);
        sluice_pool_destroy(pool);
    }
    if (r != SLUICE_OK) {
        if (ev && ev->heap) {
            free(ev);
        }
        pthread_mutex_unlock(&svc->add_mu);
        return r;
    }
    /* Into the list and onto the queue in one hold of watch_mu, so a
     * watch() either sees the pool in its replay or hears this event,
     * never both and never neither. */
    pthread_mutex_lock(&svc->watch_mu);
    pthread_mutex_lock(&svc->mu);
    svc->pools[svc->pool_count].pool = pool;
    svc->pools[svc->pool_count].in_registry = true;
    svc->pools[svc->pool_count].ready_milli = 1000;
    svc->pool_count++;
    pthread_mutex_unlock(&svc->mu);
    pthread_mutex_unlock(&svc->add_mu);
    ev->kind = EV_POOL_ADDED;
    ev->pool = pool;
    await_delivery(svc, post(svc, ev));
    pthread_mutex_unlock(&svc->watch_mu);
    if (out) {
        *out = pool;
    }
    return SLUICE_OK;
}

sluice_err sluice_service_set_drain_timeout(sluice_service *svc, const sluice_pool *pool,
                                            uint64_t drain_timeout_ns)
{
    if (!svc || !pool) {
        return SLUICE_EINVAL;
    }
    return sluice_lifecycle_set_pool_timeout(svc->lc, pool, drain_timeout_ns);
}

sluice_err sluice_service_set_readiness_weight(sluice_service *svc, const sluice_pool *pool, double weight)
{
    if (!svc || !pool || !(weight >= 0.0 && weight <= 1.0)) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_mutex_lock(&svc->mu);
    for (size_t i = 0; i < svc->pool_count; i++) {
        if (svc->pools[i].pool == pool) {
            svc->pools[i].ready_milli = (unsigned)(weight * 1000.0 + 0.5);
            r = SLUICE_OK;
        }
    }
    pthread_mutex_unlock(&svc->mu);
    return r;
}

unsigned sluice_service_readiness_weight(const sluice_service *svc, const sluice_pool *pool)
{
    unsigned w = 1000;
    if (svc && pool) {
        sluice_service *m = (sluice_service *)svc;
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->pool_count; i++) {
            if (m->pools[i].pool == pool) {
                w = m->pools[i].ready_milli;
            }
        }
        pthread_mutex_unlock(&m->mu);
    }
    return w;
}

void sluice_service_set_budget(sluice_service *svc, uint64_t shutdown_grace_ns, uint64_t drain_budget_ns)
{
    if (svc) {
        sluice_lifecycle_set_budget(svc->lc, shutdown_grace_ns, drain_budget_ns);
    }
}

size_t sluice_service_pool_count(const sluice_service *svc)
{
    if (!svc) {
        return 0;
    }
    sluice_service *m = (sluice_service *)svc;
    pthread_mutex_lock(&m->mu);
    size_t n = m->pool_count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

sluice_pool *sluice_service_pool(const sluice_service *svc, size_t i)
{
    if (!svc) {
        return NULL;
    }
    sluice_service *m = (sluice_service *)svc;
    pthread_mutex_lock(&m->mu);
    sluice_pool *p = i < m->pool_count ? m->pools[i].pool : NULL;
    pthread_mutex_unlock(&m->mu);
    return p;
}

sluice_pool *sluice_service_find_pool(const sluice_service *svc, const char *name)
{
    if (!svc || !name) {
        return NULL;
    }
    sluice_service *m = (sluice_service *)svc;
    pthread_mutex_lock(&m->mu);
    ssize_t i = find_locked(m, NULL, name);
    sluice_pool *p = i >= 0 ? m->pools[i].pool : NULL;
    pthread_mutex_unlock(&m->mu);
    return p;
}

const char *sluice_service_name(const sluice_service *svc)
{
    return svc ? svc->name : NULL;
}

sluice_metrics *sluice_service_metrics(sluice_service *svc)
{
    return svc ? svc->metrics : NULL;
}

void sluice_service_set_ready(sluice_service *svc, bool ready)
{
    if (!svc) {
        return;
    }
    pthread_mutex_lock(&svc->watch_mu);
    pthread_mutex_lock(&svc->mu);
    bool changed = svc->ready != ready;
    svc->ready = ready;
    pthread_mutex_unlock(&svc->mu);
    /* No watcher now: one added later hears the value in its replay. Once
     * destroy began, no watcher hears anything but its goodbye. */
    if (changed && svc->watcher_count > 0 && !svc->closing) {
        svc_event local, *ev = event_node(svc, &local);
        if (ev) {
            ev->kind = EV_READY;
            ev->ready = ready;
            await_delivery(svc, post(svc, ev));
        } else {
            svc->ready_resync = true; /* inside a watcher call, out of memory: told when the queue empties */
        }
    }
    pthread_mutex_unlock(&svc->watch_mu);
}

bool sluice_service_ready(const sluice_service *svc)
{
    if (!svc) {
        return false;
    }
    sluice_service *m = (sluice_service *)svc;
    pthread_mutex_lock(&m->mu);
    bool r = m->ready;
    pthread_mutex_unlock(&m->mu);
    return r;
}

void sluice_service_shutdown(sluice_service *svc)
{
    if (svc) {
        sluice_lifecycle_shutdown(svc->lc);
    }
}

bool sluice_service_stopping(const sluice_service *svc)
{
    return svc ? sluice_lifecycle_stopping(svc->lc) : false;
}

sluice_err sluice_service_run(sluice_service *svc, sluice_lifecycle_report *report)
{
    if (!svc) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->mu);
    bool again = svc->run_called;
    svc->run_called = true;
    pthread_mutex_unlock(&svc->mu);
    if (again) {
        return SLUICE_EBUSY;
    }
    /* A shutdown that began before this point turns readiness off again in
     * step 1, on this thread, after this call: readiness ends false. */
    if (!sluice_lifecycle_stopping(svc->lc)) {
        sluice_service_set_ready(svc, true);
    }
    return sluice_lifecycle_wait(svc->lc, report);
}

sluice_err sluice_service_wait_idle(sluice_service *svc, uint64_t timeout_ns)
{
    if (!svc) {
        return SLUICE_EINVAL;
    }
    const sluice_clock *clock = svc->cfg.clock;
    uint64_t start = sluice_clock_now(clock);
    uint64_t until = timeout_ns == 0 || timeout_ns > UINT64_MAX - start ? UINT64_MAX : start + timeout_ns;
    for (;;) {
        unsigned running = 0;
        size_t n = sluice_service_pool_count(svc);
        for (size_t i = 0; i < n; i++) {
            sluice_pool_stats st;
            sluice_pool_stats_get(sluice_service_pool(svc, i), &st);
            running += st.running;
        }
        if (running == 0) {
            return SLUICE_OK;
        }
        if (sluice_clock_now(clock) >= until) {
            return SLUICE_ETIMEDOUT;
        }
        struct timespec ts = {0, (long)SLUICE_CLOCK_POLL_NS};
        nanosleep(&ts, NULL);
    }
}

sluice_err sluice_service_watch(sluice_service *svc, const sluice_service_watcher *watcher)
{
    if (!svc || !watcher) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->watch_mu);
    sluice_err r = svc->closing ? SLUICE_EBUSY : SLUICE_OK;
    for (size_t w = 0; r == SLUICE_OK && w < svc->watcher_count; w++) {
        if (svc->watchers[w].w.user == watcher->user) {
            r = SLUICE_EBUSY;
        }
    }
    if (r == SLUICE_OK && svc->watcher_count == SLUICE_SERVICE_MAX_WATCHERS) {
        r = SLUICE_EOVERFLOW;
    }
    svc_event local, *ev = NULL;
    if (r == SLUICE_OK && !(ev = event_node(svc, &local))) {
        r = SLUICE_ENOMEM;
    }
    if (r == SLUICE_OK) {
        /* The replay: the pools and the readiness as they are now, in the
         * same hold of watch_mu as the list change, so every later event
         * reaches this watcher and no earlier one does. */
        svc_watcher *w = &svc->watchers[svc->watcher_count++];
        w->w = *watcher;
        w->id = ++svc->watcher_ids;
        ev->kind = EV_REPLAY;
        ev->to = w->id;
        pthread_mutex_lock(&svc->mu);
        ev->replay_pools = svc->pool_count;
        ev->ready = svc->ready;
        pthread_mutex_unlock(&svc->mu);
        w->told_ready = ev->ready;
        await_delivery(svc, post(svc, ev));
    }
    pthread_mutex_unlock(&svc->watch_mu);
    return r;
}

sluice_err sluice_service_unwatch(sluice_service *svc, void *user)
{
    if (!svc) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->watch_mu);
    sluice_err r = SLUICE_ENOENT;
    for (size_t w = 0; w < svc->watcher_count; w++) {
        if (svc->watchers[w].w.user == user) {
            uint64_t id = svc->watchers[w].id;
            watcher_erase(svc, w); /* no call starts from now on */
            /* A call to it in progress on another thread ends before this
             * returns. On the deliverer's thread the call in progress, if
             * any, is the one this runs inside: it ends when it returns. */
            while (svc->calling == id && !on_deliverer(svc)) {
                pthread_cond_wait(&svc->watch_cv, &svc->watch_mu);
            }
            r = SLUICE_OK;
            break;
        }
    }
    pthread_mutex_unlock(&svc->watch_mu);
    return r;
}

void sluice_service_destroy(sluice_service *svc)
{
    if (!svc) {
        return;
    }
    /* 1. The lifecycle: no reload (which uses the pools) can start or be
     *    running after this. */
    sluice_lifecycle_destroy(svc->lc);
    svc->lc = NULL;
    /* 2. Watchers let go of every pool while the pools are alive. No event
     *    is posted from here on (closing); those posted before are told
     *    first, in order. Then this thread takes the deliverer's role, so
     *    a watcher that calls the service from pool_removed or detached
     *    is inside a call (set_ready tells no one, add_pool and watch
     *    answer EBUSY, unwatch does not wait for itself). */
    pthread_mutex_lock(&svc->watch_mu);
    svc->closing = true;
    while (svc->delivering || svc->ev_head) {
        if (svc->delivering) {
            pthread_cond_wait(&svc->watch_cv, &svc->watch_mu);
            continue;
        }
        svc->delivering = true;
        svc->deliverer = pthread_self();
        svc->deliver_until = svc->ev_posted;
        drain(svc);
        svc->delivering = false;
    }
    svc->delivering = true;
    svc->deliverer = pthread_self();
    while (svc->watcher_count > 0) {
        uint64_t id = svc->watchers[0].id;
        bool there = true;
        for (size_t i = svc->pool_count; there && i-- > 0;) {
            there = call_watcher(svc, id, CALL_POOL_REMOVED, pool_at(svc, i), false);
        }
        if (there) {
            call_watcher(svc, id, CALL_DETACHED, NULL, false);
        }
        ssize_t at = watcher_by_id(svc, id);
        if (at >= 0) {
            watcher_erase(svc, (size_t)at);
        }
    }
    svc->delivering = false;
    SLUICE__ASSERT(!svc->ev_head);
    pthread_mutex_unlock(&svc->watch_mu);
    /* 2b. The controllers stop (their thread joined, their collector
     *     gone) while every pool is still alive. */
    sluice__svc_control_destroy(svc->control);
    svc->control = NULL;
    /* 3 and 4. Out of the registry, then destroyed, last added first. No
     *    other thread may call the service now (the header's contract),
     *    so the list is read without the lock. */
    for (size_t i = svc->pool_count; i-- > 0;) {
        if (svc->pools[i].in_registry) {
            sluice_metrics_remove_pool(svc->metrics, svc->pools[i].pool);
        }
        sluice_pool_destroy(svc->pools[i].pool);
        svc->pools[i].pool = NULL;
    }
    svc->pool_count = 0;
    /* 5. */
    if (svc->own_metrics) {
        sluice_metrics_destroy(svc->metrics);
    }
    free_service(svc);
}

static sluice_err set_control(sluice_service *svc, sluice_pool *pool, const sluice_pool_control_config *cfg,
                              bool update, char *errbuf, size_t errlen)
{
    const char *what = update ? "update_control" : "set_control";
    sluice__errf(errbuf, errlen, "%s", "");
    if (!svc || !pool || !cfg) {
        sluice__errf(errbuf, errlen, "service: %s: %s is NULL", what, !svc ? "svc" : !pool ? "pool" : "cfg");
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->control_mu);
    pthread_mutex_lock(&svc->mu);
    ssize_t at = find_locked(svc, pool, NULL);
    pthread_mutex_unlock(&svc->mu);
    sluice_err r;
    if (at < 0) {
        sluice__errf(errbuf, errlen, "service %s: %s: not a pool of this service", svc->name, what);
        r = SLUICE_ENOENT;
    } else {
        r = sluice__svc_control_add(svc->control, pool, cfg, update, errbuf, errlen);
    }
    pthread_mutex_unlock(&svc->control_mu);
    sluice__svc_control_flush(svc->control); /* "controller reconfigured", with no lock held */
    return r;
}

sluice_err sluice_service_set_control(sluice_service *svc, sluice_pool *pool,
                                      const sluice_pool_control_config *cfg, char *errbuf, size_t errlen)
{
    return set_control(svc, pool, cfg, false, errbuf, errlen);
}

sluice_err sluice_service_update_control(sluice_service *svc, sluice_pool *pool,
                                         const sluice_pool_control_config *cfg, char *errbuf, size_t errlen)
{
    return set_control(svc, pool, cfg, true, errbuf, errlen);
}

sluice_err sluice_service_remove_control(sluice_service *svc, const sluice_pool *pool)
{
    if (!svc || !pool) {
        return SLUICE_EINVAL;
    }
    /* control_mu serialises it with set_control's check-then-add. */
    pthread_mutex_lock(&svc->control_mu);
    sluice_err r = sluice__svc_control_remove(svc->control, pool);
    pthread_mutex_unlock(&svc->control_mu);
    sluice__svc_control_flush(svc->control);
    return r;
}

sluice_err sluice_service_control_stats(const sluice_service *svc, const sluice_pool *pool,
                                        sluice_pool_control_stats *out)
{
    if (!svc || !pool || !out) {
        return SLUICE_EINVAL;
    }
    return sluice__svc_control_stats(svc->control, pool, out);
}

sluice_err sluice_service_control_pin(sluice_service *svc, const sluice_pool *pool, unsigned k)
{
    if (!svc || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = sluice__svc_control_pin(svc->control, pool, true, k);
    sluice__svc_control_flush(svc->control); /* "pinned at K by hand" */
    return r;
}

sluice_err sluice_service_control_release(sluice_service *svc, const sluice_pool *pool)
{
    if (!svc || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = sluice__svc_control_pin(svc->control, pool, false, 0);
    sluice__svc_control_flush(svc->control); /* "released at K" */
    return r;
}

/* ---- health checks ------------------------------------------------------ */

/* The record of the check with this id, or -1 (check_mu held). */
static ssize_t check_by_id(const sluice_service *svc, uint64_t id)
{
    SLUICE__ASSERT_HELD(&svc->check_mu);
    for (size_t i = 0; i < svc->check_count; i++) {
        if (svc->checks[i].id == id) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* Drop record i, removed and no longer running (check_mu held). */
static void check_erase(sluice_service *svc, size_t i)
{
    SLUICE__ASSERT_HELD(&svc->check_mu);
    memmove(&svc->checks[i], &svc->checks[i + 1], (svc->check_count - i - 1) * sizeof svc->checks[0]);
    svc->check_count--;
}

sluice_err sluice_service_add_check(sluice_service *svc, const char *name, sluice_health_fn fn, void *user)
{
    if (!svc || !name || !fn || !name[0] || strlen(name) > SLUICE_SERVICE_CHECK_NAME_MAX) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->check_mu);
    sluice_err r = SLUICE_OK;
    for (size_t i = 0; i < svc->check_count; i++) {
        if (!svc->checks[i].removed && svc->checks[i].user == user) {
            r = SLUICE_EBUSY;
        }
    }
    /* A removed check still running holds its record until its runs end. */
    if (r == SLUICE_OK && svc->check_count == SLUICE_SERVICE_MAX_CHECKS) {
        r = SLUICE_EOVERFLOW;
    }
    if (r == SLUICE_OK) {
        size_t i = svc->check_count++;
        snprintf(svc->checks[i].name, sizeof svc->checks[i].name, "%s", name);
        svc->checks[i].fn = fn;
        svc->checks[i].user = user;
        svc->checks[i].id = ++svc->check_ids;
        svc->checks[i].running = 0;
        svc->checks[i].removed = false;
    }
    pthread_mutex_unlock(&svc->check_mu);
    return r;
}

sluice_err sluice_service_remove_check(sluice_service *svc, void *user)
{
    if (!svc) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&svc->check_mu);
    ssize_t at = -1;
    for (size_t i = 0; i < svc->check_count && at < 0; i++) {
        if (!svc->checks[i].removed && svc->checks[i].user == user) {
            at = (ssize_t)i;
        }
    }
    if (at < 0) {
        pthread_mutex_unlock(&svc->check_mu);
        return SLUICE_ENOENT;
    }
    uint64_t id = svc->checks[at].id;
    svc->checks[at].removed = true; /* no run starts it from now on */
    /* Wait for the runs on other threads, unless this thread is inside a
     * check of this service (see the essay); then the last run to end
     * drops the record. */
    bool wait = !in_check_of(svc);
    while (wait && (at = check_by_id(svc, id)) >= 0 && svc->checks[at].running > 0) {
        pthread_cond_wait(&svc->check_cv, &svc->check_mu);
    }
    at = check_by_id(svc, id);
    if (at >= 0 && svc->checks[at].running == 0) {
        check_erase(svc, (size_t)at);
    }
    pthread_mutex_unlock(&svc->check_mu);
    return SLUICE_OK;
}

size_t sluice_service_run_checks(sluice_service *svc, sluice_service_check_result *out, size_t cap)
{
    if (!svc) {
        return 0;
    }
    /* The checks to run, by id, in the order added; each is then marked
     * running just before its call (a check removed meanwhile, by an
     * earlier check of this run or by another thread, is skipped: no run
     * starts it once remove_check was called), run with no lock held, and
     * unmarked. */
    uint64_t ids[SLUICE_SERVICE_MAX_CHECKS];
    size_t n = 0, m = 0;
    pthread_mutex_lock(&svc->check_mu);
    for (size_t i = 0; i < svc->check_count; i++) {
        if (!svc->checks[i].removed) {
            if (out && m < cap) {
                ids[m++] = svc->checks[i].id;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&svc->check_mu);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        pthread_mutex_lock(&svc->check_mu);
        ssize_t at = check_by_id(svc, ids[i]);
        if (at < 0 || svc->checks[at].removed) {
            pthread_mutex_unlock(&svc->check_mu);
            n--; /* removed before its turn: not run, not counted */
            continue;
        }
        svc->checks[at].running++;
        sluice_health_fn fn = svc->checks[at].fn;
        void *user = svc->checks[at].user;
        snprintf(out[k].name, sizeof out[k].name, "%s", svc->checks[at].name);
        pthread_mutex_unlock(&svc->check_mu);

        out[k].line[0] = '\0';
        check_frame frame = {.svc = svc, .outer = check_frames};
        check_frames = &frame;
        out[k].state = fn(user, out[k].line, sizeof out[k].line);
        check_frames = frame.outer;
        k++;

        pthread_mutex_lock(&svc->check_mu);
        at = check_by_id(svc, ids[i]);
        SLUICE__ASSERT(at >= 0); /* a running check's record stays until its runs end */
        if (at >= 0 && --svc->checks[at].running == 0 && svc->checks[at].removed) {
            check_erase(svc, (size_t)at);
        }
        pthread_cond_broadcast(&svc->check_cv);
        pthread_mutex_unlock(&svc->check_mu);
    }
    return n;
}
