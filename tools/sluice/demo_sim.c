/*
 * tools/sluice/demo_sim.c - the producers and simulated downstreams of
 * `sluice demo`.
 *
 * Purpose: give the pools realistic work so their metrics move the way a
 * real notifications service's would. Each destination (push/APNS,
 * SMS/Twilio, email/SES) has its own producer thread, like one consumer per
 * topic partition: it generates its share of --rate at a steady pace and
 * submits with the pool's blocking policy, so a saturated pool slows its
 * own producer (backpressure) and leaves the other destinations alone.
 *
 * A task "sends" one notification: it sleeps for a latency drawn from a
 * log-normal distribution fitted to the destination's p50 and p99 (long
 * right tail, as real network calls have), optionally slowed or stalled by
 * --slowdown/--stall, and fails or panics with --error-rate/--panic-rate.
 * Long waits are cut into 10 ms slices that check sluice_task_should_stop(),
 * so a drain deadline interrupts a stalled downstream (the task then
 * returns failure: it did not deliver). A stalled call's slices also check
 * d->stalls_ended (SIGUSR1): the stall ends then, whatever its +D said, so
 * a script can look at a stall for as long as it needs and end it itself.
 *
 * A producer that falls behind (blocked by backpressure) catches up by at
 * most one second of traffic, as a consumer with lag would, then carries on
 * at the nominal pace. --spike multiplies every producer's pace for a
 * while; each producer logs its pool's wait p99 and sheds over the spike
 * when it ends (the story of `overload:` in docs/config.md).
 *
 * Each task is one notification (see DEMO_NOTE in demo.h): the producer
 * gives it the next id; a handed-back one goes to the spool (--spool)
 * before it is counted, so whatever the demo counts as handed back is in
 * the file even if the process is killed right after.
 *
 * A batched pool (demo_batch: N) sends up to N notifications per
 * downstream call: the producer adds each one to the pool's batcher, and
 * demo_batch_send makes ONE simulated call for the whole batch, with the
 * same latency distribution, faults, --error-rate and --panic-rate as a
 * single send (per batch, not per notification: a bulk API fails or
 * succeeds as one call). Whatever the batcher cannot deliver comes back
 * whole to demo_on_batch_failed, which hands each notification back
 * exactly as demo_on_abandon does (spool first, then count), so a failed
 * batch loses nothing. A batcher add that waits past the pool's
 * submit_timeout is a refused notification, as a refused submit is.
 *
 * Thread-safety: counters are atomics; the RNG is per thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/log.h"
#include "sluice/sync_metrics.h"
#include "sluice/task.h"

#include "demo.h"

demo *demo_instance;

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(uint64_t seed)
{
    if (rng_state == 0) {
        /* Per-thread seed: the run's seed mixed with the thread's address
         * of this variable (distinct per thread). */
        rng_state = (seed ^ (uint64_t)(uintptr_t)&rng_state) * 0x9E3779B97F4A7C15ull | 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static double rnd01(uint64_t seed)
{
    return (double)(rng_next(seed) >> 11) * (1.0 / 9007199254740992.0);
}

static double rnd_normal(uint64_t seed)
{
    double u1 = rnd01(seed), u2 = rnd01(seed);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static uint64_t now_ns(void)
{
    return sluice_clock_now(NULL);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / SLUICE_NS_PER_SEC), (long)(ns % SLUICE_NS_PER_SEC)};
    nanosleep(&ts, NULL);
}

/* The simulated call to the downstream: wait until `until` (system clock)
 * in slices; false if asked to stop. A `stalled` call also returns (true)
 * when SIGUSR1 ends the stalls. Not static, so that it has a name in
 * /debug/pools/stacks. */
bool demo_downstream_call(uint64_t until, bool stalled)
{
    for (;;) {
        if (sluice_task_should_stop()) {
            return false;
        }
        uint64_t now = now_ns();
        if (now >= until || (stalled && atomic_load(&demo_instance->stalls_ended))) {
            return true;
        }
        uint64_t step = until - now;
        sleep_ns(step > 10 * SLUICE_NS_PER_MS ? 10 * SLUICE_NS_PER_MS : step);
    }
}

static int deliver(demo *d, demo_pool *p, uint64_t seed);

int demo_task(void *arg)
{
    demo *d = demo_instance;
    demo_pool *p = &d->pools[DEMO_NOTE_POOL(arg)];
    bool replayed = DEMO_NOTE_REPLAYED(arg);
    uint64_t seed = d->opts.seed;
    if (d->opts.panic_rate > 0 && rnd01(seed) < d->opts.panic_rate) {
        if (replayed) {
            demo_spool_replayed_done(d); /* its outcome is decided: panicked */
        }
        sluice_panic("simulated panic in the %s client (--panic-rate)", p->name);
    }
    int rc = deliver(d, p, seed);
    if (replayed) {
        demo_spool_replayed_done(d);
    }
    return rc;
}

/* The delivery itself: 0 delivered, 1 failed (--error-rate), 2 not
 * delivered (stopped by the drain deadline). */
static int deliver(demo *d, demo_pool *p, uint64_t seed)
{
    bool fail = d->opts.error_rate > 0 && rnd01(seed) < d->opts.error_rate;

    uint64_t start = now_ns();
    uint64_t rel = start - d->start_ns;
    double factor = 1.0;
    uint64_t stall_until = 0;
    for (size_t i = 0; i < d->opts.fault_count; i++) {
        const demo_fault *f = &d->opts.faults[i];
        if (strcmp(f->pool, p->name) != 0 || rel < f->at_ns || (f->for_ns && rel >= f->at_ns + f->for_ns)) {
            continue;
        }
        if (f->stall) {
            if (atomic_load(&d->stalls_ended)) {
                continue; /* SIGUSR1 ended it */
            }
            stall_until = f->for_ns ? d->start_ns + f->at_ns + f->for_ns : UINT64_MAX;
        } else {
            factor *= f->factor;
        }
    }
    if (stall_until) {
        /* The downstream accepted the connection and went silent. */
        if (!demo_downstream_call(stall_until, true)) {
            return 2;
        }
    }
    double p50 = (double)atomic_load(&p->p50_ns), p99 = (double)atomic_load(&p->p99_ns);
    if (p50 < 1) {
        p50 = 1;
    }
    double sigma = p99 > p50 ? log(p99 / p50) / 2.326 : 0;
    double lat = p50 * exp(sigma * rnd_normal(seed)) * factor;
    if (lat > 60e9) {
        lat = 60e9;
    }
    if (p->remote && d->opts.downstream_port) {
        int rc = demo_remote_call(d, p, (uint64_t)(lat > 5e9 ? 5e9 : lat)); /* the cluster demo */
        return rc ? rc : fail ? 1 : 0;
    }
    if (!demo_downstream_call(now_ns() + (uint64_t)lat, false)) {
        return 2; /* interrupted by the drain deadline: not delivered */
    }
    return fail ? 1 : 0;
}

void demo_hand_back(demo *d, void *note)
{
    /* Spool first, the caller counts after: a notification counted as
     * handed back is already in the file (the crash-consistency promise of
     * --spool). A failed write is counted by the spool and fails the run. */
    if (d->spool) {
        demo_spool_put(d, note);
        if (DEMO_NOTE_REPLAYED(note)) {
            demo_spool_replayed_done(d);
        }
    }
}

void demo_on_abandon(const sluice_abandoned *task, void *user)
{
    demo_pool *p = user;
    if (task->fn == demo_task) {
        demo_hand_back(p->demo, task->arg);
    }
    atomic_fetch_add(&p->handed_back, 1);
}

/* ---- batched pools (demo_batch) ------------------------------------- */

/* The batch function: one simulated downstream call for items[0..n).
 * Not static, so that it has a name in /debug/pools/stacks. */
int demo_batch_send(void **items, size_t n, void *user)
{
    demo_pool *p = user;
    demo *d = p->demo;
    uint64_t seed = d->opts.seed;
    if (d->opts.panic_rate > 0 && rnd01(seed) < d->opts.panic_rate) {
        /* The batcher's cleanup handler hands the batch to
         * demo_on_batch_failed (PANICKED). */
        sluice_panic("simulated panic in the %s client, batch of %zu (--panic-rate)", p->name, n);
    }
    int rc = deliver(d, p, seed);
    if (rc != 0) {
        return rc; /* the whole batch goes to demo_on_batch_failed (FAILED) */
    }
    atomic_fetch_add(&p->batch_delivered, n);
    for (size_t i = 0; i < n; i++) {
        if (DEMO_NOTE_REPLAYED(items[i])) {
            demo_spool_replayed_done(d);
        }
    }
    return 0;
}

void demo_on_batch_failed(void **items, size_t n, int rc, sluice_batch_failure why, void *user)
{
    demo_pool *p = user;
    demo *d = p->demo;
    for (size_t i = 0; i < n; i++) {
        demo_hand_back(d, items[i]);
    }
    atomic_fetch_add(&p->batch_handed_back, n);
    uint64_t k = atomic_fetch_add(&p->batch_failures, 1) + 1;
    /* The 1st, 2nd, 4th, 8th, ...: a failure storm stays readable. */
    if ((k & (k - 1)) == 0) {
        demo_log(d,
                 "pool %s: a batch of %zu was not delivered (%s, rc %d): handed back%s (%llu batches so far)",
                 p->name, n, sluice_batch_failure_name(why), rc, d->spool ? " to the spool" : "",
                 (unsigned long long)k);
    }
}

bool demo_start_batchers(demo *d, void *sm)
{
    bool ok = true;
    for (size_t i = 0; i < d->pool_count; i++) {
        demo_pool *p = &d->pools[i];
        if (!p->batch_size) {
            continue;
        }
        sluice_pool_config pc;
        sluice_pool_config_get(p->pool, &pc);
        sluice_batcher_config bc;
        sluice_batcher_config_init(&bc);
        bc.name = p->name; /* sluice_batcher_*{name="email"} */
        bc.pool = p->pool;
        bc.max_items = p->batch_size;
        bc.max_delay_ns = p->batch_wait_ns;
        bc.max_in_flight = 0; /* one batch per worker at most: batches never queue behind each other */
        /* Backpressure as a plain pool's: an add waits for room as long as a
         * BLOCK submit would (then the notification is refused). */
        bc.add_timeout_ns = pc.submit_timeout_ns;
        bc.batch_fn = demo_batch_send;
        bc.failure_fn = demo_on_batch_failed;
        bc.user = p;
        char err[256];
        sluice_err r = sluice_batcher_create(&bc, &p->batcher, err, sizeof err);
        if (r != SLUICE_OK) {
            fprintf(stderr, "sluice demo: pool %s: cannot create its batcher (demo_batch %u): %s\n", p->name,
                    p->batch_size, err[0] ? err : sluice_strerror(r));
            p->batcher = NULL;
            ok = false;
            continue;
        }
        if (sm && sluice_sync_metrics_add_batcher(sm, p->batcher) != SLUICE_OK) {
            demo_log(d, "pool %s: its batcher is not in /metrics (could not register it)", p->name);
        }
    }
    return ok;
}

void demo_drain_batchers(demo *d)
{
    for (size_t i = 0; i < d->pool_count; i++) {
        demo_pool *p = &d->pools[i];
        if (!p->batcher) {
            continue;
        }
        sluice_batcher_drain_report rep;
        sluice_err r = sluice_batcher_drain(p->batcher, p->batch_drain_ns, &rep);
        if (r == SLUICE_ETIMEDOUT) {
            demo_log(
                d,
                "pool %s: batcher drain deadline: %llu notifications not yet sent handed back, %llu batches "
                "left to the pool's drain",
                p->name, (unsigned long long)rep.items_unsent, (unsigned long long)rep.in_flight);
        }
    }
}

void demo_destroy_batchers(demo *d, void *sm)
{
    for (size_t i = 0; i < d->pool_count; i++) {
        demo_pool *p = &d->pools[i];
        if (!p->batcher) {
            continue;
        }
        if (sm) {
            sluice_sync_metrics_remove_batcher(sm, p->batcher); /* ENOENT when it was never added */
        }
        /* Drains without a limit first: the pool still exists (or has
         * drained, and then refuses the batch: handed back). */
        sluice_batcher_destroy(p->batcher);
        p->batcher = NULL;
    }
}

void demo_on_panic(const sluice_panic_info *info, void *user)
{
    demo_pool *p = user;
    uint64_t n = atomic_fetch_add(&p->panics_seen, 1) + 1;
    /* Log the 1st, 2nd, 4th, 8th, ... so a panic storm stays readable. */
    if ((n & (n - 1)) == 0) {
        demo_log(p->demo, "pool %s: task panicked on worker %u: %s (%llu so far; recovered, worker goes on)",
                 info->pool_name, info->worker_index, info->message, (unsigned long long)n);
    }
}

void demo_on_event(const sluice_pool_event *event, void *user)
{
    demo_pool *p = user;
    /* Resizes, drain start/end, worker expiry: one structured line each
     * (the logger filters worker starts and rate-limits refusals). */
    if (p->demo->logger) {
        sluice_log_pool_event(p->demo->logger, event);
    }
}

/* --spike: where one producer is in the spike, and what its pool looked
 * like when the spike began (so the summary covers the spike alone). */
typedef struct spike_watch {
    bool on, done;
    uint64_t shed, finished;
    sluice_histogram wait; /* the wait histogram at the start */
} spike_watch;

static void spike_mark(demo_pool *p, uint64_t *shed, uint64_t *finished, sluice_histogram *h)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p->pool, &st);
    *shed = st.shed;
    *finished = st.completed + st.failed + st.panicked;
    sluice_pool_histogram_get(p->pool, SLUICE_HIST_WAIT, h);
}

/* The spike's edges: at the start a line naming the pool's overload mode;
 * at the end (or when the producer stops inside it) the wait p99 over the
 * spike, what was served and what the pool shed. The wait is submit to
 * start, so it is what a FIFO queue adds and what CoDel and LIFO bound. */
static void spike_edge(demo *d, demo_pool *p, spike_watch *w, bool on)
{
    sluice_pool_config cfg;
    sluice_pool_config_get(p->pool, &cfg);
    const char *mode = sluice_overload_mode_name(cfg.overload);
    if (on) {
        spike_mark(p, &w->shed, &w->finished, &w->wait);
        demo_log(d, "pool %s: spike: %gx its rate (overload: %s)", p->name, d->opts.spike_factor, mode);
        w->on = true;
        return;
    }
    static _Thread_local sluice_histogram now; /* large: off the stack */
    uint64_t shed, finished;
    spike_mark(p, &shed, &finished, &now);
    uint64_t delta[SLUICE_HIST_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= now.bucket_count; i++) {
        delta[i] = now.counts[i] - w->wait.counts[i];
    }
    double q = demo_quantile(&now, delta, 0.99);
    char wait[32];
    if (q < 0) {
        snprintf(wait, sizeof wait, "-");
    } else if (q == INFINITY) {
        snprintf(wait, sizeof wait, "above %.0fs", now.bucket_count ? now.bounds[now.bucket_count - 1] : 0);
    } else if (q < 1) {
        snprintf(wait, sizeof wait, "%.1fms", q * 1e3);
    } else {
        snprintf(wait, sizeof wait, "%.2fs", q);
    }
    demo_log(d, "pool %s: spike over: wait p99 %s, %llu served, %llu shed (overload: %s)", p->name, wait,
             (unsigned long long)(finished - w->finished), (unsigned long long)(shed - w->shed), mode);
    w->on = false;
    w->done = true;
}

/* This producer's pace now: its interval, divided by the spike factor
 * inside the spike window. */
static uint64_t spike_pace(demo *d, demo_pool *p, spike_watch *w, uint64_t now, uint64_t interval)
{
    if (d->opts.spike_factor <= 0 || w->done) {
        return interval;
    }
    uint64_t rel = now - d->start_ns;
    bool in = rel >= d->opts.spike_at_ns &&
              (d->opts.spike_for_ns == 0 || rel < d->opts.spike_at_ns + d->opts.spike_for_ns);
    if (in != w->on) {
        spike_edge(d, p, w, in);
    }
    if (!in) {
        return interval;
    }
    uint64_t iv = (uint64_t)((double)interval / d->opts.spike_factor);
    return iv ? iv : 1;
}

static void *producer_main(void *arg)
{
    demo_pool *p = arg;
    demo *d = p->demo;
    uint64_t base = (uint64_t)(1e9 / p->rate);
    if (base == 0) {
        base = 1;
    }
    spike_watch *spike = calloc(1, sizeof *spike); /* NULL: run without the spike's summary */
    uint64_t next = now_ns();
    sluice_submit_opts so = {.label = p->name};
    while (!atomic_load(&d->stop_producers)) {
        uint64_t now = now_ns();
        uint64_t interval = spike ? spike_pace(d, p, spike, now, base) : base;
        if (now < next) {
            uint64_t step = next - now;
            sleep_ns(step > 20 * SLUICE_NS_PER_MS ? 20 * SLUICE_NS_PER_MS : step);
            continue;
        }
        if (now - next > SLUICE_NS_PER_SEC) {
            next = now - SLUICE_NS_PER_SEC; /* bounded catch-up */
        }
        uint64_t id = atomic_fetch_add(&d->next_id, 1) & DEMO_NOTE_ID_MAX;
        void *note = DEMO_NOTE(p->index, false, id);
        /* Batched: into the current batch (ECLOSED once the batcher drains
         * at stop_producers); otherwise a task of its own. */
        sluice_err r = p->batcher ? sluice_batcher_add(p->batcher, note)
                                  : sluice_pool_submit_ex(p->pool, demo_task, note, &so);
        if (r == SLUICE_OK) {
            atomic_fetch_add(&p->accepted, 1);
        } else if (r == SLUICE_ECLOSED) {
            break; /* draining: the lifecycle stopped us */
        } else {
            atomic_fetch_add(&p->refused, 1);
            demo_admin_count_refused(p);
        }
        next += interval;
    }
    if (spike && spike->on) {
        spike_edge(d, p, spike, false); /* cut short by the drain */
    }
    free(spike);
    return NULL;
}

int demo_thread_create(pthread_t *thread, void *(*start)(void *), void *arg, const char *what)
{
    const char *fail = getenv("SLUICE_DEMO_FAIL_THREADS");
    if (fail && *fail) {
        /* A comma-separated list of thread kinds. */
        size_t n = strlen(what);
        for (const char *s = fail; *s;) {
            size_t len = strcspn(s, ",");
            if (len == n && strncmp(s, what, n) == 0) {
                return EAGAIN;
            }
            s += len + (s[len] == ',');
        }
    }
    return pthread_create(thread, NULL, start, arg);
}

bool demo_start_producers(demo *d)
{
    bool ok = true;
    for (size_t i = 0; i < d->pool_count; i++) {
        demo_pool *p = &d->pools[i];
        if (p->rate <= 0) {
            continue;
        }
        int rc = demo_thread_create(&p->producer, producer_main, p, "producer");
        p->producer_started = rc == 0;
        if (!p->producer_started) {
            fprintf(stderr, "sluice demo: pool %s: cannot start its producer thread: %s\n", p->name,
                    strerror(rc));
            ok = false;
        }
    }
    return ok;
}

void demo_join_producers(demo *d)
{
    for (size_t i = 0; i < d->pool_count; i++) {
        if (d->pools[i].producer_started) {
            pthread_join(d->pools[i].producer, NULL);
            d->pools[i].producer_started = false;
        }
    }
}
