/*
 * src/service/lifecycle.c - signals and the drain sequence of a service.
 *
 * Purpose. A deploy sends SIGTERM and waits a grace period before SIGKILL.
 * In that window the service must stop being sent work, finish or hand
 * back what it holds, and say what happened. Doing it by hand in every
 * service is how "deploys lose in-flight tasks" post-mortems get written,
 * so the sequence lives here once (see sluice/lifecycle.h for the steps).
 *
 * Design.
 *  - Signals are taken synchronously: main() blocks SIGTERM, SIGINT and
 *    SIGHUP before any thread exists (every thread inherits the mask), and
 *    one signal thread sits in sigwait(). Nothing runs in a signal handler,
 *    so the callbacks may lock, allocate and log freely.
 *  - The signal thread only records the request and wakes the thread in
 *    sluice_lifecycle_wait(), which runs the sequence. The signal thread
 *    keeps listening, so a second SIGTERM/SIGINT during the drain is seen
 *    at once and ends the process (on_force_exit) even if a pool is stuck.
 *  - Pools are drained concurrently, one short-lived thread each, every one
 *    with min(its own drain timeout, the total budget): draining one after
 *    another would let a slow first pool eat the budget of the rest.
 *  - Every pool's drain has an absolute deadline, fixed when the drain
 *    step begins. When a drain thread cannot be started (RLIMIT_NPROC,
 *    RLIMIT_AS), that pool is drained on the waiting thread after every
 *    thread that could start has started, with what is left until its
 *    deadline (at least 1 ns: hand back at once), so the budget holds
 *    however many threads were refused (issue 12.11: serial drains used to
 *    take each pool's full timeout in turn, 16.5 s against 10.5 s).
 *  - SIGHUP is handed to a reload thread (requests arriving during a
 *    reload coalesce into one more), so a slow reload never keeps the
 *    signal thread from seeing SIGTERM.
 *  - The signal thread is stopped at destroy by a thread-directed SIGHUP
 *    (pthread_kill) after setting `quit`; it is blocked in that thread, so
 *    sigwait() returns it and the thread sees `quit`.
 *
 * Ordering guarantees: set_ready(false) happens before the grace wait,
 * which happens before stop_producers(), which happens before the first
 * pool drain starts; the report is filled after every drain returned.
 *
 * Lock order: lc->mu is a leaf; no callback and no pool call runs under it.
 */
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/lifecycle.h"

#include "base/timing.h"
#include "service/service_internal.h"

int sluice__service_spawn_default(pthread_t *thread, void *(*start)(void *), void *arg, const char *what)
{
    (void)what;
    return pthread_create(thread, NULL, start, arg);
}

sluice__spawn_fn sluice__service_spawn = sluice__service_spawn_default;

typedef struct lc_pool {
    sluice_pool *pool;
    uint64_t drain_timeout_ns;
} lc_pool;

struct sluice_lifecycle {
    sluice_lifecycle_config cfg; /* immutable after start, except the two fields below (under mu) */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when `stopping` turns true */
    /* Guarded by mu. */
    bool stopping;
    bool finished; /* the sequence ran to its end */
    bool wait_called;
    bool quit;                /* destroy: the signal and reload threads must exit */
    unsigned reload_requests; /* SIGHUPs not yet served (coalesced) */
    int signo;
    uint64_t stop_ns; /* clock time the shutdown began */
    uint64_t grace_ns, budget_ns;
    lc_pool pools[SLUICE_LIFECYCLE_MAX_POOLS];
    size_t pool_count;

    pthread_cond_t reload_cv; /* signalled when reload_requests grows or quit is set */

    pthread_t sig_thread;
    bool has_thread;
    pthread_t reload_thread;
    bool has_reload_thread;
};

static void lc_log(const sluice_lifecycle *lc, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void lc_log(const sluice_lifecycle *lc, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (lc->cfg.log) {
        lc->cfg.log(lc->cfg.user, line);
    } else {
        fprintf(stderr, "sluice: %s\n", line);
    }
}

static const char *sig_name(int signo)
{
    switch (signo) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    case 0:
        return "shutdown request";
    default:
        return "signal";
    }
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

sluice_err sluice_lifecycle_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? SLUICE_OK : SLUICE_ESYS;
}

/* Begin the shutdown. Returns true when this call began it. */
static bool begin_stop(sluice_lifecycle *lc, int signo)
{
    pthread_mutex_lock(&lc->mu);
    bool first = !lc->stopping;
    if (first) {
        lc->stopping = true;
        lc->signo = signo;
        lc->stop_ns = sluice_clock_now(lc->cfg.clock);
        pthread_cond_broadcast(&lc->cv);
    }
    pthread_mutex_unlock(&lc->mu);
    return first;
}

static void *signal_main(void *arg)
{
    sluice_lifecycle *lc = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int signo = 0;
        int rc = sigwait(&set, &signo);
        pthread_mutex_lock(&lc->mu);
        bool quit = lc->quit;
        bool finished = lc->finished;
        pthread_mutex_unlock(&lc->mu);
        if (quit) {
            return NULL;
        }
        if (rc != 0) {
            continue;
        }
        if (signo == SIGHUP) {
            if (lc->has_reload_thread) {
                /* Served by the reload thread, so that a slow reload never
                 * keeps this thread from seeing a SIGTERM. */
                pthread_mutex_lock(&lc->mu);
                lc->reload_requests++;
                pthread_cond_signal(&lc->reload_cv);
                pthread_mutex_unlock(&lc->mu);
            } else {
                lc_log(lc, "SIGHUP: no reload handler; ignored");
            }
            continue;
        }
        if (!sluice_lifecycle_stopping(lc)) {
            /* Log first, so the line comes before the sequence's own. A
             * concurrent sluice_lifecycle_shutdown may win begin_stop:
             * then this signal is the same request, not a second one. */
            lc_log(lc, "%s: shutting down (send it again to exit at once)", sig_name(signo));
            begin_stop(lc, signo);
            continue;
        }
        if (finished) {
            lc_log(lc, "%s: shutdown already finished; ignored", sig_name(signo));
            continue;
        }
        lc_log(lc, "second signal (%s) during shutdown: exiting at once without finishing the drain",
               sig_name(signo));
        if (lc->cfg.on_force_exit) {
            lc->cfg.on_force_exit(lc->cfg.user, signo);
        } else {
            static const char msg[] = "sluice: exiting now; queued and running tasks were not finished\n";
            ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
            (void)w;
            _exit(lc->cfg.force_exit_code ? lc->cfg.force_exit_code : 130);
        }
    }
}

/* Serves SIGHUPs one at a time; those that arrive during a reload are
 * coalesced into one more reload after it. */
static void *reload_main(void *arg)
{
    sluice_lifecycle *lc = arg;
    pthread_mutex_lock(&lc->mu);
    for (;;) {
        while (!lc->quit && lc->reload_requests == 0) {
            pthread_cond_wait(&lc->reload_cv, &lc->mu);
        }
        if (lc->quit) {
            break;
        }
        lc->reload_requests = 0;
        pthread_mutex_unlock(&lc->mu);
        lc_log(lc, "SIGHUP: reloading the config");
        lc->cfg.reload(lc->cfg.user);
        pthread_mutex_lock(&lc->mu);
    }
    pthread_mutex_unlock(&lc->mu);
    return NULL;
}

sluice_err sluice_lifecycle_start(const sluice_lifecycle_config *cfg, sluice_lifecycle **out)
{
    if (!cfg || !out) {
        return SLUICE_EINVAL;
    }
    sluice_lifecycle *lc = calloc(1, sizeof *lc);
    if (!lc) {
        return SLUICE_ENOMEM;
    }
    lc->cfg = *cfg;
    lc->grace_ns = cfg->shutdown_grace_ns;
    lc->budget_ns = cfg->drain_budget_ns;
    pthread_mutex_init(&lc->mu, NULL);
    pthread_cond_init(&lc->cv, NULL);
    pthread_cond_init(&lc->reload_cv, NULL);
    if (!cfg->no_signals) {
        /* The signal thread must start with the signals blocked, whatever
         * the caller did: block them here too (harmless if already). */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        if (cfg->reload) {
            lc->has_reload_thread = sluice__service_spawn(&lc->reload_thread, reload_main, lc, "reload") == 0;
            if (!lc->has_reload_thread) {
                sluice_lifecycle_destroy(lc);
                return SLUICE_ESYS;
            }
        }
        int rc = sluice__service_spawn(&lc->sig_thread, signal_main, lc, "signal");
        if (rc != 0) {
            sluice_lifecycle_destroy(lc);
            return SLUICE_ESYS;
        }
        lc->has_thread = true;
    }
    *out = lc;
    return SLUICE_OK;
}

sluice_err sluice_lifecycle_add_pool(sluice_lifecycle *lc, sluice_pool *pool, uint64_t drain_timeout_ns)
{
    if (!lc || !pool) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&lc->mu);
    sluice_err r = SLUICE_OK;
    if (lc->stopping) {
        r = SLUICE_EBUSY;
    } else if (lc->pool_count == SLUICE_LIFECYCLE_MAX_POOLS) {
        r = SLUICE_EOVERFLOW;
    } else {
        lc->pools[lc->pool_count].pool = pool;
        lc->pools[lc->pool_count].drain_timeout_ns = drain_timeout_ns;
        lc->pool_count++;
    }
    pthread_mutex_unlock(&lc->mu);
    return r;
}

sluice_err sluice_lifecycle_set_pool_timeout(sluice_lifecycle *lc, const sluice_pool *pool,
                                             uint64_t drain_timeout_ns)
{
    if (!lc || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->pool_count; i++) {
        if (lc->pools[i].pool == pool) {
            lc->pools[i].drain_timeout_ns = drain_timeout_ns;
            r = SLUICE_OK;
            break;
        }
    }
    pthread_mutex_unlock(&lc->mu);
    return r;
}

void sluice_lifecycle_set_budget(sluice_lifecycle *lc, uint64_t shutdown_grace_ns, uint64_t drain_budget_ns)
{
    if (!lc) {
        return;
    }
    pthread_mutex_lock(&lc->mu);
    lc->grace_ns = shutdown_grace_ns;
    lc->budget_ns = drain_budget_ns;
    pthread_mutex_unlock(&lc->mu);
}

void sluice_lifecycle_shutdown(sluice_lifecycle *lc)
{
    if (lc && begin_stop(lc, 0)) {
        lc_log(lc, "shutdown requested: draining");
    }
}

bool sluice_lifecycle_stopping(const sluice_lifecycle *lc)
{
    if (!lc) {
        return false;
    }
    sluice_lifecycle *m = (sluice_lifecycle *)lc;
    pthread_mutex_lock(&m->mu);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->mu);
    return s;
}

typedef struct drain_job {
    sluice_pool *pool;
    uint64_t timeout_ns;  /* min(the pool's drain timeout, the budget); 0 = no limit */
    uint64_t deadline_ns; /* drain start + timeout_ns on the lifecycle's clock; 0 = none */
    sluice_err err;
    sluice_drain_report report;
    pthread_t thread;
    bool threaded;
} drain_job;

static void *drain_main(void *arg)
{
    drain_job *j = arg;
    memset(&j->report, 0, sizeof j->report);
    j->err = sluice_pool_drain(j->pool, j->timeout_ns, &j->report);
    return NULL;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

sluice_err sluice_lifecycle_wait(sluice_lifecycle *lc, sluice_lifecycle_report *report)
{
    if (!lc) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&lc->mu);
    if (lc->wait_called) {
        pthread_mutex_unlock(&lc->mu);
        return SLUICE_EBUSY;
    }
    lc->wait_called = true;
    while (!lc->stopping) {
        pthread_cond_wait(&lc->cv, &lc->mu);
    }
    int signo = lc->signo;
    uint64_t stop_ns = lc->stop_ns;
    uint64_t grace = lc->grace_ns, budget = lc->budget_ns;
    size_t n = lc->pool_count;
    lc_pool pools[SLUICE_LIFECYCLE_MAX_POOLS];
    memcpy(pools, lc->pools, n * sizeof pools[0]);
    pthread_mutex_unlock(&lc->mu);

    /* 1. Not ready. */
    if (lc->cfg.set_ready) {
        lc->cfg.set_ready(lc->cfg.user, false);
    }
    lc_log(lc, "not ready: /health/ready now answers 503; waiting %.3fs grace before stopping producers",
           secs(grace));
    /* 2. Grace. */
    if (grace) {
        sluice__sleep_until(lc->cfg.clock, add_sat(sluice_clock_now(lc->cfg.clock), grace));
    }
    /* 3. Stop the producers. */
    if (lc->cfg.stop_producers) {
        lc->cfg.stop_producers(lc->cfg.user);
    }
    lc_log(lc, "producers stopped; draining %zu pool%s within %.3fs", n, n == 1 ? "" : "s", secs(budget));
    /* 4. Drain, all pools at once. */
    drain_job jobs[SLUICE_LIFECYCLE_MAX_POOLS];
    memset(jobs, 0, sizeof jobs);
    uint64_t drain_start = sluice_clock_now(lc->cfg.clock);
    size_t unthreaded = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = pools[i].drain_timeout_ns;
        if (budget && (t == 0 || t > budget)) {
            t = budget;
        }
        jobs[i].pool = pools[i].pool;
        jobs[i].timeout_ns = t;
        jobs[i].deadline_ns = t ? add_sat(drain_start, t) : 0;
        int rc = sluice__service_spawn(&jobs[i].thread, drain_main, &jobs[i], "drain");
        jobs[i].threaded = rc == 0;
        if (!jobs[i].threaded) {
            unthreaded++;
            lc_log(
                lc,
                "pool %s: cannot start a drain thread (%s); draining it on this thread within its deadline",
                sluice_pool_name(jobs[i].pool), strerror(rc));
        }
    }
    /* Pools without a thread, one after another, each with what is left
     * until its own deadline: a slow one cannot push the next past it. */
    for (size_t i = 0; i < n && unthreaded; i++) {
        if (jobs[i].threaded) {
            continue;
        }
        if (jobs[i].deadline_ns) {
            uint64_t now = sluice_clock_now(lc->cfg.clock);
            /* 1 ns, not 0 (which means no limit): hand back at once. */
            jobs[i].timeout_ns = jobs[i].deadline_ns > now ? jobs[i].deadline_ns - now : 1;
        }
        drain_main(&jobs[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].threaded) {
            pthread_join(jobs[i].thread, NULL);
        }
    }
    /* 5. Report. */
    sluice_lifecycle_report rep;
    memset(&rep, 0, sizeof rep);
    rep.signo = signo;
    rep.pool_count = n;
    sluice_err result = SLUICE_OK;
    for (size_t i = 0; i < n; i++) {
        rep.pools[i].name = sluice_pool_name(jobs[i].pool);
        rep.pools[i].err = jobs[i].err;
        rep.pools[i].drain = jobs[i].report;
        rep.handed_back += jobs[i].report.handed_back;
        rep.still_running += jobs[i].report.still_running;
        if (jobs[i].err != SLUICE_OK) {
            rep.timed_out = true;
            result = SLUICE_ETIMEDOUT;
        }
        lc_log(lc, "pool %s: drain %s in %.3fs: %llu finished, %llu handed back, %llu still running",
               rep.pools[i].name, jobs[i].err == SLUICE_OK ? "complete" : sluice_strerror(jobs[i].err),
               secs(jobs[i].report.elapsed_ns), (unsigned long long)jobs[i].report.completed,
               (unsigned long long)jobs[i].report.handed_back,
               (unsigned long long)jobs[i].report.still_running);
    }
    rep.elapsed_ns = sluice_clock_now(lc->cfg.clock) - stop_ns;
    lc_log(lc, "shutdown %s in %.3fs: %llu handed back, %llu still running",
           rep.timed_out ? "timed out" : "complete", secs(rep.elapsed_ns),
           (unsigned long long)rep.handed_back, (unsigned long long)rep.still_running);
    pthread_mutex_lock(&lc->mu);
    lc->finished = true;
    pthread_mutex_unlock(&lc->mu);
    if (report) {
        *report = rep;
    }
    return result;
}

void sluice_lifecycle_destroy(sluice_lifecycle *lc)
{
    if (!lc) {
        return;
    }
    pthread_mutex_lock(&lc->mu);
    lc->quit = true;
    pthread_cond_broadcast(&lc->reload_cv);
    pthread_mutex_unlock(&lc->mu);
    if (lc->has_thread) {
        pthread_kill(lc->sig_thread, SIGHUP);
        pthread_join(lc->sig_thread, NULL);
    }
    if (lc->has_reload_thread) {
        pthread_join(lc->reload_thread, NULL); /* after a reload in progress */
    }
    pthread_cond_destroy(&lc->reload_cv);
    pthread_cond_destroy(&lc->cv);
    pthread_mutex_destroy(&lc->mu);
    free(lc);
}
