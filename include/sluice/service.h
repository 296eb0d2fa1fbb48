/*
 * sluice/service.h - one service object: the pools of a service, each
 * registered once and then known to the metrics registry, the lifecycle
 * (signals, readiness, drain budget) and any watcher (the admin server).
 *
 * Without it a service wires every pool into three places (the metrics
 * registry, the admin server, the lifecycle) and tears them down in the
 * reverse order by hand, in every error path. With it:
 *
 *     sluice_service_config sc;
 *     sluice_service_config_init(&sc);
 *     sc.name = "notifications";
 *     sc.drain_budget_ns = 10 * SLUICE_NS_PER_SEC;
 *     sc.stop_producers = stop_my_consumers;   // set a flag and return
 *     sluice_service *svc;
 *     if (sluice_service_create(&sc, &svc, err, sizeof err)) ...  // in main(), before any thread
 *     sluice_pool *push;
 *     sluice_service_add_pool(svc, &push_cfg, 8 * SLUICE_NS_PER_SEC, &push, err, sizeof err);
 *     ... start the producers ...
 *     sluice_lifecycle_report rep;
 *     sluice_service_run(svc, &rep);   // ready; blocks until SIGTERM/SIGINT, then drains
 *     sluice_service_wait_idle(svc, 5 * SLUICE_NS_PER_SEC);
 *     sluice_service_destroy(svc);     // every pool, in the right order
 *
 * A config file builds the same object with sluice_config_service_create
 * (sluice/config.h, libsluice-config); an admin server serves it with
 * sluice_admin_config.service (sluice/admin.h, libsluice-admin). Both sit
 * above this header: the service knows neither YAML nor HTTP.
 *
 * What the service does with a pool added to it:
 *   - owns it: sluice_service_destroy destroys it, and nothing else may;
 *   - exports its pool_* metrics in the service's registry;
 *   - drains it on SIGTERM/SIGINT (or sluice_service_shutdown) within
 *     min(its drain timeout, the service's drain budget): see
 *     sluice/lifecycle.h for the sequence (not ready, grace, stop
 *     producers, drain, report);
 *   - tells every watcher (pool_added), so an admin server serves it in
 *     /health/pools, /health/ready and /debug/pools without being told again.
 * Pools are never removed before destroy, so a pool pointer obtained from
 * the service stays valid until sluice_service_destroy.
 *
 * Readiness: the service starts not ready; sluice_service_run turns it
 * ready (unless a shutdown has begun) and step 1 of the shutdown turns it
 * not ready again. Watchers hear every change (ready_changed).
 *
 * Teardown order in sluice_service_destroy (the order is the point):
 *   1. the lifecycle: the signal thread and the reload thread stop (a
 *      reload in progress is waited for: it may use the pools);
 *   2. every watcher hears pool_removed for each pool (last added first)
 *      while the pool is still alive, then detached; an admin server stops
 *      serving the pools here and waits for requests using them;
 *   2b. the pools' controllers stop (sluice_service_set_control);
 *   3. each pool leaves the metrics registry, so no scrape touches it;
 *   4. each pool is destroyed, last added first (queued tasks go to its
 *      abandon handler as DESTROY, running tasks are joined);
 *   5. an owned registry is destroyed; the object is freed.
 *
 * Threads: sluice_service_create starts the lifecycle's signal thread
 * (unless no_signals) and, with a reload callback, its reload thread.
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked in the thread that calls
 * sluice_service_create; threads created after that inherit the mask.
 * Create the service in main() before any other thread (or call
 * sluice_lifecycle_block_signals first): a thread created earlier may take
 * SIGTERM itself and die with the default action.
 *
 * Lock order: add_mu (add_pool) -> watch_mu (the watchers and their
 * event queue) -> mu (the pool list, readiness; a leaf) -> a pool's or
 * the registry's own locks; control_mu (set/update/remove_control) and
 * check_mu (health checks) beside them. No service lock is held while the
 * lifecycle runs its callbacks or drains, nor while any log line is
 * delivered (see sluice_service_config.log), nor while a health check
 * runs (see sluice_health_fn), nor while a watcher is called (see
 * sluice_service_watcher).
 */
#ifndef SLUICE_SERVICE_H
#define SLUICE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/control.h"
#include "sluice/lifecycle.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"

typedef struct sluice_service sluice_service;

/* The most pools one service holds (the lifecycle's report is inline). */
#define SLUICE_SERVICE_MAX_POOLS SLUICE_LIFECYCLE_MAX_POOLS

/* The longest service name kept, in bytes (longer names are refused). */
#define SLUICE_SERVICE_NAME_MAX 63

typedef struct sluice_service_config {
    /* For log lines ("notifications: ..."); copied. NULL = "service".
     * At most SLUICE_SERVICE_NAME_MAX bytes. */
    const char *name;
    /* Time between not-ready and stopping the producers. 0 = none. */
    uint64_t shutdown_grace_ns;
    /* Total time for draining all pools; 0 = no limit. */
    uint64_t drain_budget_ns;
    /* Stop the sources of work (step 3 of the shutdown); NULL = none.
     * Runs on the thread in sluice_service_run. Must not wait for a
     * producer blocked in a submit to a full BLOCK pool: the drain after
     * it is what releases that submit (SLUICE_ECLOSED). Set a flag and
     * return. */
    void (*stop_producers)(void *user);
    /* SIGHUP; NULL = logged and ignored. Runs on the lifecycle's reload
     * thread, never concurrently with itself; may run while the shutdown
     * runs (a resize of a draining pool then fails with SLUICE_ECLOSED).
     * sluice_config_service_reload fits here. */
    void (*reload)(void *user);
    /* Log lines (no trailing newline); NULL = stderr with "sluice: ".
     * Called with no service lock held, so it may call back into the
     * service: any sluice_service_* call (set/update/remove_control, pin,
     * release, stats, watch, unwatch, add_pool, set_ready, ...) except
     * sluice_service_destroy, and none once destroy has begun (the
     * control thread's last lines may be delivered while destroy stops
     * it). Called from the lifecycle's threads, the control thread (after
     * each round of ticks) and the thread of a control call whose
     * controller logged (update_control's "controller reconfigured", a
     * pin's or release's line: delivered on that thread before the call
     * returns; from inside this callback, before the inner call returns),
     * so calls may overlap: it must be thread-safe. Each thread's lines
     * come in the order they were logged. A controller's line that cannot
     * be copied (out of memory) is counted and the count said by the next
     * delivery ("control: 2 log lines lost: out of memory"), always to this log,
     * also for the lines of a controller that has a log of its own. */
    void (*log)(void *user, const char *line);
    /* Second signal during the shutdown; NULL = _exit(force_exit_code). */
    void (*on_force_exit)(void *user, int signo);
    void *user;
    /* Exit status of the forced exit; 0 = 130. */
    int force_exit_code;
    /* Take no signals (tests, or a program that drives the shutdown itself
     * with sluice_service_shutdown). */
    bool no_signals;
    /* The clock grace, drain deadlines and wait_idle are measured on;
     * NULL = system. Pools keep their own clock (sluice_pool_config.clock). */
    const sluice_clock *clock;
    /* The registry pools are exported to; borrowed, must outlive the
     * service. NULL = the service creates its own (sluice_service_metrics). */
    sluice_metrics *metrics;
} sluice_service_config;

/* sluice_service_config_init - zero cfg: every field then means its default. */
SLUICE_API void sluice_service_config_init(sluice_service_config *cfg);

/*
 * sluice_service_create - create a service with no pools and start its
 * lifecycle (signal thread, reload thread).
 * Returns: SLUICE_OK; SLUICE_EINVAL (cfg or out NULL, or a name longer
 * than SLUICE_SERVICE_NAME_MAX, said in errbuf); SLUICE_ENOMEM; SLUICE_ESYS
 * (a thread could not be started, said in errbuf). On error nothing is
 * left running and *out is untouched.
 * Ownership: *out belongs to the caller (sluice_service_destroy); cfg is
 * copied, the name too; the registry, clock and user are borrowed.
 * errbuf: optional (NULL, 0); NUL-terminated when given.
 * Thread-safety: call from main() before other threads (see above).
 */
SLUICE_API sluice_err sluice_service_create(const sluice_service_config *cfg, sluice_service **out,
                                            char *errbuf, size_t errlen);

/*
 * sluice_service_add_pool - create a pool from `pool_cfg` and register it:
 * the service owns it, exports its metrics, drains it at shutdown within
 * drain_timeout_ns (0 = the service's budget; UINT64_MAX = the budget or,
 * with no budget, no limit) and tells the watchers.
 * Returns: SLUICE_OK and *out (optional; a borrowed pointer valid until
 * sluice_service_destroy); whatever sluice_pool_create returns, with its
 * message in errbuf; SLUICE_EBUSY (a pool with that name is already in
 * the service, the shutdown has begun, or destroy has: from a watcher's
 * pool_removed); SLUICE_EOVERFLOW (already SLUICE_SERVICE_MAX_POOLS
 * pools); SLUICE_ENOMEM. On error no pool is left behind and nothing was
 * registered anywhere.
 * Returns once every watcher heard pool_added (from inside a watcher
 * call: before; they hear it when that call returns).
 * Thread-safety: safe from any thread, also concurrently with readers of
 * the pool list, and from a watcher callback. Deadlock hazard: see
 * sluice_service_watcher (it waits for the watchers).
 */
SLUICE_API sluice_err sluice_service_add_pool(sluice_service *svc, const sluice_pool_config *pool_cfg,
                                              uint64_t drain_timeout_ns, sluice_pool **out, char *errbuf,
                                              size_t errlen);

/*
 * sluice_service_set_drain_timeout - change a pool's drain timeout (after
 * a reload); 0 = the budget. Returns SLUICE_OK, SLUICE_EINVAL (NULL),
 * SLUICE_ENOENT (not a pool of this service). Thread-safe.
 */
SLUICE_API sluice_err sluice_service_set_drain_timeout(sluice_service *svc, const sluice_pool *pool,
                                                       uint64_t drain_timeout_ns);

/*
 * sluice_service_set_readiness_weight - how much a saturated `pool` counts
 * against readiness. /health/ready (an admin server serving this service)
 * turns 503 when the weights of the pools saturated longer than the
 * saturation threshold add up to 1 or more. 1 (the default): one such
 * pool makes the replica unready; 0: the pool never does (it is still
 * reported, and its own alerts still fire); 0.5: two such pools do.
 * Stored in thousandths (0.0004 is 0). Trade-off: a pool left out keeps
 * its replica in the load balancer while that pool's work is refused or
 * queued, which is right when the pool serves side work (notifications
 * that can wait) and wrong when it is on the request path.
 * Returns SLUICE_OK, SLUICE_EINVAL (NULL, or weight not in [0, 1]: NaN
 * included), SLUICE_ENOENT (not a pool of this service). Thread-safe; takes
 * effect at the next /health/ready.
 */
SLUICE_API sluice_err sluice_service_set_readiness_weight(sluice_service *svc, const sluice_pool *pool,
                                                          double weight);

/* sluice_service_readiness_weight - the pool's weight in thousandths
 * (0..1000), or 1000 for NULL or a pool not in the service. Thread-safe;
 * takes only a leaf lock, so it may be called under any other lock. */
SLUICE_API unsigned sluice_service_readiness_weight(const sluice_service *svc, const sluice_pool *pool);

/* sluice_service_set_budget - change the grace and the drain budget
 * (after a reload); 0 = none / no limit. A shutdown already begun keeps
 * the values it started with. Thread-safe; NULL is a no-op. */
SLUICE_API void sluice_service_set_budget(sluice_service *svc, uint64_t shutdown_grace_ns,
                                          uint64_t drain_budget_ns);

/* sluice_service_pool_count - how many pools were added. Thread-safe. */
SLUICE_API size_t sluice_service_pool_count(const sluice_service *svc);

/* sluice_service_pool - the i-th pool added (0-based), or NULL past the
 * end. Borrowed, valid until sluice_service_destroy. Thread-safe. */
SLUICE_API sluice_pool *sluice_service_pool(const sluice_service *svc, size_t i);

/* sluice_service_find_pool - the pool named `name`, or NULL. Borrowed,
 * valid until sluice_service_destroy. Thread-safe. */
SLUICE_API sluice_pool *sluice_service_find_pool(const sluice_service *svc, const char *name);

/* sluice_service_name - the name given at create (or "service"). Valid
 * until destroy. */
SLUICE_API const char *sluice_service_name(const sluice_service *svc);

/* sluice_service_metrics - the registry the pools are exported to (the
 * borrowed one from the config, or the service's own). Borrowed: valid
 * until destroy. Register the service's own metrics here. */
SLUICE_API sluice_metrics *sluice_service_metrics(sluice_service *svc);

/*
 * sluice_service_set_ready / sluice_service_ready - readiness (what
 * /health/ready answers). set_ready tells every watcher when the value
 * changes (ready_changed), and returns once they heard it (from inside a
 * watcher call: they hear it when that call returns; once destroy has
 * begun: no watcher hears it). Thread-safe, also from a watcher callback.
 * Deadlock hazard: see sluice_service_watcher (set_ready waits for the
 * watchers).
 */
SLUICE_API void sluice_service_set_ready(sluice_service *svc, bool ready);
SLUICE_API bool sluice_service_ready(const sluice_service *svc);

/*
 * sluice_service_shutdown - begin the shutdown as if SIGTERM had come (for
 * example when a run's duration ends, or a start-up step failed after
 * producers began). Idempotent. Thread-safe, also from a callback.
 */
SLUICE_API void sluice_service_shutdown(sluice_service *svc);

/* sluice_service_stopping - true once the shutdown has begun. Thread-safe. */
SLUICE_API bool sluice_service_stopping(const sluice_service *svc);

/*
 * sluice_service_run - turn ready (unless a shutdown has already begun),
 * block until SIGTERM/SIGINT or sluice_service_shutdown, then run the
 * shutdown sequence on this thread (not ready, grace, stop_producers,
 * drain within the budget, report) and fill *report (optional).
 * Returns: SLUICE_OK when every pool drained in time; SLUICE_ETIMEDOUT
 * when one missed its deadline (the report says which, and what was
 * handed back); SLUICE_EBUSY when called a second time; SLUICE_EINVAL.
 * Thread-safety: one thread (usually main). Tasks told to stop at the
 * deadline may still be running when it returns: sluice_service_wait_idle.
 */
SLUICE_API sluice_err sluice_service_run(sluice_service *svc, sluice_lifecycle_report *report);

/*
 * sluice_service_wait_idle - wait until no task runs in any pool (after
 * the drain: tasks that saw sluice_task_should_stop() at the deadline
 * return in their own time), so that counters read afterwards are final.
 * timeout_ns on the service's clock; 0 (or UINT64_MAX) = no limit.
 * Returns SLUICE_OK (idle) or SLUICE_ETIMEDOUT (tasks still running).
 * Polls each pool's stats every millisecond of real time. Deadlock
 * hazard: not from a task of one of the pools (it counts itself).
 */
SLUICE_API sluice_err sluice_service_wait_idle(sluice_service *svc, uint64_t timeout_ns);

/*
 * A watcher: told of every pool and readiness change of a service. The
 * admin server is one (sluice_admin_config.service); a test can be one.
 * Every callback may be NULL.
 *
 * Calls: made with no service lock held, one at a time (never two at
 * once, to one watcher or to two), on the thread of a call that changed
 * something (add_pool, set_ready, watch, destroy): not always the thread
 * whose change is told, as a notifier that finds another thread telling
 * the watchers leaves its event to that thread and waits for it.
 *
 * Order: every change is an event, queued in the order the changes
 * happened. A watcher hears, once each and in that order, every event
 * that came after it was added, and none from before (watch's replay
 * already gave it that state). Nothing is lost: a call of its that is in
 * progress or due is never dropped, except by its unwatch.
 *
 * Re-entry: a callback may call back into the service (any call but
 * destroy: add_pool, set_ready, watch and unwatch, its own unwatch
 * included, controls, checks, readers). The events such a call causes
 * are queued and told after the callback returns, before the outermost
 * notifier returns: from inside a callback, add_pool returns before any
 * watcher (this one included) heard the pool, and watch before the new
 * watcher heard its replay. unwatch from inside a callback never waits.
 *
 * Deadlock hazards: a notifier (add_pool, set_ready, watch) waits until
 * every watcher heard its event, so a callback must not wait for a thread
 * that is in a notifier of this service or in unwatch of this watcher,
 * and no thread may call a notifier while holding a lock a callback takes
 * (the callback may run on another thread, and wait for that lock while
 * the notifier waits for the callback). A slow callback holds up this
 * service's notifiers (their events queue behind it), and no other call:
 * readers, controls, checks, and unwatch of another watcher go on.
 */
typedef struct sluice_service_watcher {
    /* A pool joined (also once per existing pool when the watcher is
     * added, in order). The pool is borrowed until pool_removed. */
    void (*pool_added)(void *user, sluice_pool *pool);
    /* The pool is about to be destroyed (sluice_service_destroy); it is
     * still alive during this call. Stop using it before returning. */
    void (*pool_removed)(void *user, sluice_pool *pool);
    /* Readiness changed (also once with the current value when added). */
    void (*ready_changed)(void *user, bool ready);
    /* The service is being destroyed; after this call the watcher must
     * not call the service (its unwatch included). From destroy's first
     * pool_removed on, no watcher hears any other event: set_ready then
     * tells no one, add_pool and watch answer SLUICE_EBUSY, and unwatch
     * of a watcher not yet told spares it the rest (detached included). */
    void (*detached)(void *user);
    void *user;
} sluice_service_watcher;

/* The most watchers one service keeps. */
#define SLUICE_SERVICE_MAX_WATCHERS 8

/*
 * sluice_service_watch - add a watcher (copied); it hears pool_added for
 * every existing pool and ready_changed with the current readiness (its
 * replay) before this returns, or, called from inside a watcher call,
 * when that call returns. Returns SLUICE_OK, SLUICE_EINVAL (NULL),
 * SLUICE_EBUSY (a watcher with the same user is already there, or
 * destroy has begun), SLUICE_EOVERFLOW (already
 * SLUICE_SERVICE_MAX_WATCHERS), SLUICE_ENOMEM (from inside a watcher call
 * only: its replay could not be queued). Thread-safe, also from a watcher
 * callback. Deadlock hazard: see sluice_service_watcher.
 */
SLUICE_API sluice_err sluice_service_watch(sluice_service *svc, const sluice_service_watcher *watcher);

/*
 * sluice_service_unwatch - remove the watcher whose user is `user`: no
 * call to it starts from this call on (no pool_removed: it stops on its
 * own), and when it returns none is in progress, so `user` may be freed.
 * From inside a watcher call it does not wait (the call in progress is
 * the one it runs in): a watcher removing itself finishes its own call
 * and hears nothing after. The slot is free at once (the same user may
 * watch again). Returns SLUICE_OK, SLUICE_ENOENT, SLUICE_EINVAL (svc
 * NULL). Thread-safe, also from a watcher callback; not concurrently
 * with sluice_service_destroy (see detached). Deadlock hazard: from
 * another thread it waits for the watcher's call in progress, so it must
 * not hold a lock that call takes.
 */
SLUICE_API sluice_err sluice_service_unwatch(sluice_service *svc, void *user);

/* ---- health checks: components the service depends on ------------------ */

/* What a check says. DEGRADED is shown but keeps the service ready and its
 * /health/pools at 200 (a cluster replica on its local fallback bound);
 * FAIL turns both 503. */
typedef enum sluice_health_state {
    SLUICE_HEALTH_OK = 0,
    SLUICE_HEALTH_DEGRADED,
    SLUICE_HEALTH_FAIL,
} sluice_health_state;

/* A check: write one line (no newline) into line[len] and say the state.
 * Runs on the asking thread (an admin request) with no service lock held,
 * so it may call back into the service: any sluice_service_* call but
 * destroy, add_check and remove_check (its own removal included) among
 * them; a check that runs the checks runs itself again, so it must stop
 * the recursion itself. Two requests may run it at once on two threads:
 * it must be thread-safe. It must be quick and must not block on the
 * network. Deadlock hazard: an admin server runs the checks under its
 * pools lock (read) and hears pool_added under it (write), so a check of
 * a service an admin server serves must not call add_pool. */
typedef sluice_health_state (*sluice_health_fn)(void *user, char *line, size_t len);

/* The most checks one service keeps, and the longest name and line. */
#define SLUICE_SERVICE_MAX_CHECKS 8
#define SLUICE_SERVICE_CHECK_NAME_MAX 31
#define SLUICE_SERVICE_CHECK_LINE_MAX 255

/*
 * sluice_service_add_check - add a health check (libsluice-cluster adds
 * "cluster"); an admin server serving the service shows every check's line
 * in /health/ready and /health/pools. name: 1..31 bytes, copied.
 * Returns SLUICE_OK, SLUICE_EINVAL (NULL, bad name), SLUICE_EBUSY (a check
 * with the same user is there), SLUICE_EOVERFLOW (SLUICE_SERVICE_MAX_CHECKS;
 * a removed check counts until its runs in progress end).
 * Thread-safe, also from a check.
 */
SLUICE_API sluice_err sluice_service_add_check(sluice_service *svc, const char *name, sluice_health_fn fn,
                                               void *user);

/* sluice_service_remove_check - remove the check whose user is `user`: no
 * run starts it from the call on, and when it returns the check is not
 * running and will not run again. Called from inside a check of this
 * service (any of its checks, on this thread) it does not wait for the
 * runs on other threads (two checks removing each other would wait for
 * each other): those end on their own, and a check removing itself
 * finishes its own run. From inside a check of another service it waits
 * as from anywhere else. Deadlock hazard: two checks of two services
 * removing each other's check, each while the other runs on another
 * thread, wait for each other. Returns SLUICE_OK, SLUICE_ENOENT, or
 * SLUICE_EINVAL (svc NULL). Thread-safe, also from a check. */
SLUICE_API sluice_err sluice_service_remove_check(sluice_service *svc, void *user);

/* One check's answer. */
typedef struct sluice_service_check_result {
    char name[SLUICE_SERVICE_CHECK_NAME_MAX + 1];
    sluice_health_state state;
    char line[SLUICE_SERVICE_CHECK_LINE_MAX + 1];
} sluice_service_check_result;

/* sluice_service_run_checks - run every check, in the order added, into
 * out[0..cap), with no service lock held. Returns how many checks there
 * are when the run begins, less those removed before their turn came
 * (may exceed cap; only the first cap are run, and out[] holds those that
 * ran, in order). A check removed during the run (by an earlier check of
 * this run, or on another thread) is not started after its removal; a
 * check added during the run waits for the next run. Thread-safe, also
 * from a check (see sluice_health_fn). */
SLUICE_API size_t sluice_service_run_checks(sluice_service *svc, sluice_service_check_result *out,
                                            size_t cap);

/*
 * sluice_service_set_control - run a controller (sluice/control.h: an
 * adaptive limit, auto-tune, scheduled probes) for one of the service's
 * pools. The service owns it: its thread (one for all controllers,
 * started with the first) ticks it, its log lines go to the service's
 * log, and the service's registry exports pool_concurrency_limit,
 * pool_autotune_pinned, pool_autotune_decisions_total{direction,reason},
 * pool_probe_duration_seconds, pool_probe_failures_total and
 * pool_probe_healthy. cfg->log, when given, gets the controller's lines
 * instead of the service's log, delivered as that log is (with no service
 * lock held; see sluice_service_config.log), so it may call back into the
 * service too; keep cfg->log_user valid until sluice_service_destroy
 * returns (a line of the control thread's last round of ticks may reach
 * it just after sluice_service_remove_control returned). It runs until
 * sluice_service_remove_control or sluice_service_destroy (step 2b: after
 * the watchers let go, before any pool leaves the registry); during the
 * drain its resizes are refused quietly and it sends no probes.
 * The config layer calls this for pools whose file has concurrency_*,
 * autotune* or probe_* keys, so a configured service needs no code.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL, or what
 * sluice_pool_control_create refuses, said in errbuf); SLUICE_ENOENT (not
 * a pool of this service); SLUICE_EBUSY (it has a controller already);
 * SLUICE_ESYS (the thread could not start); SLUICE_ENOMEM.
 * Thread-safety: safe from any thread, also from a log callback or a
 * watcher callback.
 */
SLUICE_API sluice_err sluice_service_set_control(sluice_service *svc, sluice_pool *pool,
                                                 const sluice_pool_control_config *cfg, char *errbuf,
                                                 size_t errlen);

/*
 * sluice_service_update_control - sluice_service_set_control for a pool
 * that may have a controller already: then its settings change in place
 * (sluice_pool_control_reconfigure: K, a pin, its counters and exported
 * series carry over) and it is ticked at once; else one is made as
 * set_control makes it. A controller that exists keeps the cfg->log and
 * cfg->log_user it was made with (as reconfigure does): to change them,
 * remove it and set a new one. sluice_service_reload_config calls it for pools
 * whose concurrency_*, autotune* or probe_* keys changed and still ask
 * for a controller (one whose keys all went back to off loses its
 * controller: sluice_service_remove_control).
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL, or what the controller refuses,
 * said in errbuf; the running settings stay); SLUICE_ENOENT (not a pool of
 * this service); as set_control when it makes one.
 * Thread-safety: safe from any thread, also from the service's or a
 * controller's log callback and from a watcher callback.
 */
SLUICE_API sluice_err sluice_service_update_control(sluice_service *svc, sluice_pool *pool,
                                                    const sluice_pool_control_config *cfg, char *errbuf,
                                                    size_t errlen);

/*
 * sluice_service_remove_control - stop and free the pool's controller
 * (what a reload that turns every concurrency_*, autotune* and probe_* key
 * of the pool off does). From the moment it returns the control thread
 * no longer ticks it, the pool's series of pool_concurrency_limit,
 * pool_autotune_pinned, pool_autotune_decisions_total and pool_probe_*
 * are gone from the registry (a family left with no series is not
 * written), sluice_service_control_stats, _pin and _release answer
 * SLUICE_ENOENT for the pool and its probes no longer count for
 * /health/ready. A scrape in flight has either all of the pool's series
 * or none. K stays where the controller left it (and a pin ends with the
 * controller): to put the pool back to its configured K, resize it after
 * (sluice_service_reload_config resizes to the file's `workers`). It
 * succeeds while the pool drains too (it resizes nothing itself). A
 * probe task still queued runs or is handed back as any task is, and
 * touches only its own memory. A later sluice_service_set_control (or a
 * reload that turns control on again) makes a fresh controller: new
 * counters, no pin, its baseline taken at its first tick.
 * Returns: SLUICE_OK; SLUICE_ENOENT (the pool has no controller, or is not
 * a pool of this service); SLUICE_EINVAL (NULL).
 * Thread-safety: safe from any thread, also while the control thread ticks
 * and a scrape runs: it waits for the round of ticks or the scrape in
 * progress (short: neither blocks on a task), and from a log callback,
 * even one delivering that controller's own line on the control thread
 * (lines are delivered with no lock held), and from a watcher callback.
 */
SLUICE_API sluice_err sluice_service_remove_control(sluice_service *svc, const sluice_pool *pool);

/* sluice_service_control_stats - a copy of the pool's controller stats
 * (its limit, pin, decisions, probe health). Returns SLUICE_OK,
 * SLUICE_ENOENT (no controller for the pool), SLUICE_EINVAL (NULL).
 * Thread-safe; the admin server's /health/pools and /health/ready read it. */
SLUICE_API sluice_err sluice_service_control_stats(const sluice_service *svc, const sluice_pool *pool,
                                                   sluice_pool_control_stats *out);

/* sluice_service_control_pin / _release - pin the pool's K at k by hand
 * (sluice_pool_control_pin) or release a pin, whoever set it (a resize, a
 * reload, a pin). Returns what those return; SLUICE_ENOENT without a
 * controller. Thread-safe, also from a log callback; the line each logs
 * is delivered before it returns. */
SLUICE_API sluice_err sluice_service_control_pin(sluice_service *svc, const sluice_pool *pool, unsigned k);
SLUICE_API sluice_err sluice_service_control_release(sluice_service *svc, const sluice_pool *pool);

/*
 * sluice_service_destroy - the teardown in the order given above; NULL is
 * a no-op. Call after sluice_service_run has returned, or without it (an
 * error path after create: then queued tasks are handed back as DESTROY
 * and running ones are asked to stop and joined). The signals stay blocked
 * in the calling thread.
 * Deadlock hazard: joins every worker, so a task that never returns (and
 * never checks sluice_task_should_stop) blocks it for ever; not from a
 * task, a pool callback or a watcher callback of this service.
 */
SLUICE_API void sluice_service_destroy(sluice_service *svc);

#endif /* SLUICE_SERVICE_H */
