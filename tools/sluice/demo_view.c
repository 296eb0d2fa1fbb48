/*
 * tools/sluice/demo_view.c - what `sluice demo` shows: the live view while
 * it runs, and the reconciliation when it stops.
 *
 * Live view. Once a second the view thread snapshots every pool
 * (sluice_pool_stats_get and the task-time histogram) and prints, per pool,
 * running/capacity, queue depth, tasks finished per second, the p99 task
 * time over the last second, failures, panics, drops and refused submits.
 * On a terminal it redraws an 80-column screen with the last few log lines
 * under the table; otherwise it prints one plain line per second, fit for
 * a log file. The same thread ends a --duration run by asking the
 * service to shut down, exactly as SIGTERM would.
 *
 * A batched pool (demo_batch) also shows its batcher: batches sealed per
 * second and their mean size over the last second (from the batcher's
 * size histogram), batches in flight and notifications pending. Its pool's
 * tasks/s counts batches: the downstream calls, fewer by the batch size.
 *
 * p99 over the last second comes from the difference of two histogram
 * snapshots, interpolated inside its bucket the way PromQL's
 * histogram_quantile does (so it matches the dashboards, and is as
 * approximate as they are).
 *
 * Reconciliation. After the drain, for each pool:
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 * from the pool's own counters, plus two cross-checks against what the
 * demo counted itself: the producer's accepted submits equal the pool's
 * `submitted` (plus any /health/pools probes, which are tasks too), and the abandon handler saw dropped +
 * shed + abandoned tasks. A run "balances" only when all three hold for every pool.
 *
 * A batched pool's tasks are batches (replayed notifications go through
 * the batcher too), so its notifications are counted through the
 * batcher instead, and both identities must hold:
 *     notifications: accepted = added = delivered + handed back (items)
 *     batch tasks:   submitted = completed + failed + ... + abandoned
 * with the cross-checks that the pool accepted every sealed batch the
 * batcher did not see refused (the rest of `submitted` are probes), the
 * failure handler saw every failed item, the send every delivered one, and
 * the tasks the pool handed back are the batches the batcher saw abandoned
 * plus those the abandon handler saw.
 *
 * Thread-safety: log lines are appended under log_mu from any thread; the
 * view's per-pool `last_*` fields belong to the view thread.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

void demo_log(demo *d, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (d->tty && atomic_load(&d->view_started)) {
        pthread_mutex_lock(&d->log_mu);
        unsigned slot = d->log_next++ % 6;
        /* The screen shows at most 79 columns of it anyway. */
        size_t n = strnlen(line, sizeof d->log_lines[slot] - 1);
        memcpy(d->log_lines[slot], line, n);
        d->log_lines[slot][n] = '\0';
        pthread_mutex_unlock(&d->log_mu);
    } else {
        fprintf(stderr, "sluice demo: %s\n", line);
    }
}

/* Quantile q (seconds) of the counts delta[0..n] (n = the +Inf bucket),
 * interpolated linearly inside its bucket as PromQL's histogram_quantile
 * does, so the view agrees with a Grafana panel; INFINITY when it falls in
 * the +Inf bucket, -1 when there is nothing. */
double demo_quantile(const sluice_histogram *h, const uint64_t *delta, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->bucket_count; i++) {
        total += delta[i];
    }
    if (total == 0) {
        return -1;
    }
    double rank = q * (double)total;
    uint64_t acc = 0;
    for (size_t i = 0; i < h->bucket_count; i++) {
        if (delta[i] && (double)(acc + delta[i]) >= rank) {
            double lower = i ? h->bounds[i - 1] : 0;
            double frac = (rank - (double)acc) / (double)delta[i];
            return lower + (h->bounds[i] - lower) * frac;
        }
        acc += delta[i];
    }
    return INFINITY;
}

static void fmt_p99(double s, char *buf, size_t len)
{
    if (s < 0) {
        snprintf(buf, len, "-");
    } else if (s == INFINITY) {
        snprintf(buf, len, ">max");
    } else if (s < 1) {
        snprintf(buf, len, "%.1fms", s * 1e3);
    } else {
        snprintf(buf, len, "%.2fs", s);
    }
}

static void fmt_mean(double mean, char *buf, size_t len)
{
    if (mean < 0) {
        snprintf(buf, len, "-");
    } else {
        snprintf(buf, len, "%.1f", mean);
    }
}

typedef struct row {
    sluice_pool_stats st;
    double tasks_per_s;
    double p99_s;
    /* batched pools */
    sluice_batcher_stats bst;
    double batches_per_s;
    double mean_batch; /* items per batch sealed in the last second; -1 none */
    double wait99_s;   /* submit to start, last second: the queueing a spike adds */
} row;

static void snapshot(demo_pool *p, row *r, double dt)
{
    sluice_pool_stats_get(p->pool, &r->st);
    uint64_t done = r->st.completed + r->st.failed + r->st.panicked;
    r->tasks_per_s = dt > 0 ? (double)(done - p->last_done) / dt : 0;
    p->last_done = done;
    static _Thread_local sluice_histogram h; /* large: keep it off the stack */
    sluice_pool_histogram_get(p->pool, SLUICE_HIST_TASK, &h);
    uint64_t delta[SLUICE_HIST_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= h.bucket_count; i++) {
        delta[i] = h.counts[i] - p->last_hist[i];
        p->last_hist[i] = h.counts[i];
    }
    r->p99_s = demo_quantile(&h, delta, 0.99);
    sluice_pool_histogram_get(p->pool, SLUICE_HIST_WAIT, &h);
    for (size_t i = 0; i <= h.bucket_count; i++) {
        delta[i] = h.counts[i] - p->last_wait_hist[i];
        p->last_wait_hist[i] = h.counts[i];
    }
    r->wait99_s = demo_quantile(&h, delta, 0.99);
    if (p->batcher) {
        sluice_batcher_stats_get(p->batcher, &r->bst);
        sluice_batcher_size_histogram(p->batcher, &h);
        uint64_t items = (uint64_t)h.sum_seconds; /* the size histogram's sum is items */
        uint64_t batches = h.count - p->last_batches;
        r->batches_per_s = dt > 0 ? (double)batches / dt : 0;
        r->mean_batch = batches ? (double)(items - p->last_batch_items) / (double)batches : -1;
        p->last_batches = h.count;
        p->last_batch_items = items;
    }
}

static void draw_tty(demo *d, row *rows, uint64_t up_ns)
{
    char buf[8192];
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, __VA_ARGS__)
    OUT("\033[H\033[J");
    OUT("sluice demo: %s   up %llus   %.0f/s   %s\n", d->service_name,
        (unsigned long long)(up_ns / SLUICE_NS_PER_SEC), d->opts.rate,
        sluice_service_ready(d->svc) ? "ready" : "NOT READY (draining)");
    OUT("admin %s  (/metrics, /debug/pools)   Ctrl-C drains\n\n", d->admin_url[0] ? d->admin_url : "off");
    OUT("%-8s %11s %11s %8s %8s %8s %6s %6s %6s %7s\n", "pool", "run/cap", "queue", "tasks/s", "p99",
        "wait p99", "failed", "panics", "drops", "refused");
    for (size_t i = 0; i < d->pool_count; i++) {
        row *r = &rows[i];
        char rc[24], q[24], p99[16], w99[16];
        snprintf(rc, sizeof rc, "%u/%u", r->st.running, r->st.capacity);
        snprintf(q, sizeof q, "%zu/%zu", r->st.queue_depth, r->st.queue_capacity);
        fmt_p99(r->p99_s, p99, sizeof p99);
        fmt_p99(r->wait99_s, w99, sizeof w99);
        OUT("%-8.8s %11s %11s %8.1f %8s %8s %6llu %6llu %6llu %7llu\n", d->pools[i].name, rc, q,
            r->tasks_per_s, p99, w99, (unsigned long long)r->st.failed, (unsigned long long)r->st.panicked,
            (unsigned long long)(r->st.dropped + r->st.shed),
            (unsigned long long)atomic_load(&d->pools[i].refused));
    }
    for (size_t i = 0; i < d->pool_count; i++) {
        demo_pool *p = &d->pools[i];
        if (!p->batcher) {
            continue;
        }
        row *r = &rows[i];
        char mean[16];
        fmt_mean(r->mean_batch, mean, sizeof mean);
        OUT("%-8.8s batches of <=%u: %.1f/s, mean %s; %u in flight, %zu pending\n", p->name, p->batch_size,
            r->batches_per_s, mean, r->bst.in_flight, r->bst.pending_items);
    }
    OUT("\n");
    pthread_mutex_lock(&d->log_mu);
    unsigned count = d->log_next < 6 ? d->log_next : 6;
    for (unsigned i = 0; i < count; i++) {
        unsigned slot = (d->log_next - count + i) % 6;
        OUT("%.79s\n", d->log_lines[slot]);
    }
    pthread_mutex_unlock(&d->log_mu);
#undef OUT
    if (n > sizeof buf) {
        n = sizeof buf - 1;
    }
    fwrite(buf, 1, n, stdout);
    fflush(stdout);
}

static void draw_plain(demo *d, row *rows, uint64_t up_ns)
{
    printf("t=%llus", (unsigned long long)(up_ns / SLUICE_NS_PER_SEC));
    for (size_t i = 0; i < d->pool_count; i++) {
        row *r = &rows[i];
        char p99[16], w99[16];
        fmt_p99(r->p99_s, p99, sizeof p99);
        fmt_p99(r->wait99_s, w99, sizeof w99);
        printf(
            " | %s run=%u/%u q=%zu rate=%.0f/s p99=%s wait99=%s fail=%llu panic=%llu drop=%llu refused=%llu",
            d->pools[i].name, r->st.running, r->st.capacity, r->st.queue_depth, r->tasks_per_s, p99, w99,
            (unsigned long long)r->st.failed, (unsigned long long)r->st.panicked,
            (unsigned long long)(r->st.dropped + r->st.shed),
            (unsigned long long)atomic_load(&d->pools[i].refused));
        if (d->pools[i].batcher) {
            char mean[16];
            fmt_mean(r->mean_batch, mean, sizeof mean);
            printf(" batches=%.1f/s mean_batch=%s", r->batches_per_s, mean);
        }
    }
    printf("\n");
    fflush(stdout);
}

static void *view_main(void *arg)
{
    demo *d = arg;
    uint64_t last = sluice_clock_now(NULL);
    uint64_t next_tick = last + SLUICE_NS_PER_SEC;
    bool ended = false;
    while (!atomic_load(&d->view_stop)) {
        uint64_t now = sluice_clock_now(NULL);
        if (!ended && d->opts.duration_ns && now - d->start_ns >= d->opts.duration_ns) {
            ended = true;
            demo_log(d, "--duration reached: draining");
            sluice_service_shutdown(d->svc);
        }
        if (now >= next_tick) {
            row rows[DEMO_MAX_POOLS];
            double dt = (double)(now - last) / 1e9;
            for (size_t i = 0; i < d->pool_count; i++) {
                snapshot(&d->pools[i], &rows[i], dt);
            }
            last = now;
            next_tick += SLUICE_NS_PER_SEC;
            if (next_tick < now) {
                next_tick = now + SLUICE_NS_PER_SEC;
            }
            if (d->opts.view != DEMO_VIEW_NONE) {
                if (d->tty) {
                    draw_tty(d, rows, now - d->start_ns);
                } else {
                    draw_plain(d, rows, now - d->start_ns);
                }
            }
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

bool demo_start_view(demo *d)
{
    atomic_store(&d->view_started, true); /* before the thread: demo_log reads it */
    int rc = demo_thread_create(&d->view_thread, view_main, d, "view");
    if (rc != 0) {
        atomic_store(&d->view_started, false);
        fprintf(stderr, "sluice demo: cannot start the view thread (it also ends --duration runs): %s\n",
                strerror(rc));
        return false;
    }
    return true;
}

void demo_stop_view(demo *d)
{
    atomic_store(&d->view_stop, true);
    if (atomic_load(&d->view_started)) {
        pthread_join(d->view_thread, NULL);
        atomic_store(&d->view_started, false);
    }
    /* From here on demo_log writes to stderr; the lines kept for the
     * screen are already on it. */
}

/* A batched pool's checks beyond its task identity (which the caller
 * checked): see the file's header. Says why in `why` when false; on true,
 * `why` says how many health probes `submitted` holds, if any. */
static bool reconcile_batched(demo_pool *p, const sluice_pool_stats *st, char *why, size_t len)
{
    sluice_batcher_stats b;
    sluice_batcher_stats_get(p->batcher, &b);
    uint64_t accepted = atomic_load(&p->accepted);
    uint64_t handed = atomic_load(&p->handed_back);
    uint64_t batch_tasks = b.batches - b.failures[SLUICE_BATCH_REFUSED];
    if (b.in_flight != 0 || b.pending_items != 0) {
        snprintf(why, len, "  (batcher not quiescent: %u batches out, %zu items pending)", b.in_flight,
                 b.pending_items);
    } else if (accepted != b.added) {
        snprintf(why, len, "  (accepted %llu, batcher added %llu)", (unsigned long long)accepted,
                 (unsigned long long)b.added);
    } else if (b.added != b.delivered + b.failed_items) {
        snprintf(why, len, "  (batcher: %llu items unaccounted)",
                 (unsigned long long)(b.added > b.delivered + b.failed_items
                                          ? b.added - b.delivered - b.failed_items
                                          : b.delivered + b.failed_items - b.added));
    } else if (atomic_load(&p->batch_delivered) != b.delivered) {
        snprintf(why, len, "  (the send counted %llu delivered)",
                 (unsigned long long)atomic_load(&p->batch_delivered));
    } else if (atomic_load(&p->batch_handed_back) != b.failed_items) {
        snprintf(why, len, "  (the failure handler saw %llu)",
                 (unsigned long long)atomic_load(&p->batch_handed_back));
    } else if (batch_tasks > st->submitted) {
        snprintf(why, len, "  (pool took %llu tasks for %llu batches)", (unsigned long long)st->submitted,
                 (unsigned long long)batch_tasks);
    } else if (handed + b.failures[SLUICE_BATCH_ABANDONED] != st->dropped + st->shed + st->abandoned) {
        snprintf(why, len, "  (handed back %llu batches + %llu tasks)",
                 (unsigned long long)b.failures[SLUICE_BATCH_ABANDONED], (unsigned long long)handed);
    } else {
        if (st->submitted > batch_tasks) {
            snprintf(why, len, "  (%llu health probes)", (unsigned long long)(st->submitted - batch_tasks));
        }
        return true;
    }
    return false;
}

/* Two lines per batched pool under the table: its notifications, and
 * its batches (the pool's tasks in the table). */
static void reconcile_batched_line(demo_pool *p, FILE *out)
{
    sluice_batcher_stats b;
    sluice_batcher_stats_get(p->batcher, &b);
    static sluice_histogram h; /* large; the main thread only */
    sluice_batcher_size_histogram(p->batcher, &h);
    fprintf(out,
            "%s notifications (batched, up to %u per call): accepted %llu = added %llu = delivered %llu + "
            "handed back %llu\n",
            p->name, p->batch_size, (unsigned long long)atomic_load(&p->accepted),
            (unsigned long long)b.added, (unsigned long long)b.delivered, (unsigned long long)b.failed_items);
    fprintf(
        out,
        "%s batches (its tasks above): %llu sent (by size %llu, time %llu, drain %llu; mean %.1f per batch), "
        "%llu ok, %llu not delivered (failed %llu, panicked %llu, refused %llu, abandoned %llu, unsent "
        "%llu)\n",
        p->name, (unsigned long long)b.batches, (unsigned long long)b.flushes[SLUICE_FLUSH_SIZE],
        (unsigned long long)b.flushes[SLUICE_FLUSH_TIME], (unsigned long long)b.flushes[SLUICE_FLUSH_DRAIN],
        h.count ? h.sum_seconds / (double)h.count : 0.0, (unsigned long long)b.batches_ok,
        (unsigned long long)b.batches_failed, (unsigned long long)b.failures[SLUICE_BATCH_FAILED],
        (unsigned long long)b.failures[SLUICE_BATCH_PANICKED],
        (unsigned long long)b.failures[SLUICE_BATCH_REFUSED],
        (unsigned long long)b.failures[SLUICE_BATCH_ABANDONED],
        (unsigned long long)b.failures[SLUICE_BATCH_UNSENT]);
}

bool demo_reconcile(demo *d, FILE *out)
{
    bool all_ok = true;
    sluice_pool_stats tot;
    memset(&tot, 0, sizeof tot);
    uint64_t tot_refused = 0;
    fprintf(out, "\nreconciliation: submitted = completed+failed+panicked+dropped+shed+abandoned\n");
    fprintf(out, "%-8s %9s %9s %7s %8s %7s %5s %9s  %s\n", "pool", "submitted", "completed", "failed",
            "panicked", "dropped", "shed", "abandoned", "balance");
    for (size_t i = 0; i < d->pool_count + 1; i++) {
        bool total = i == d->pool_count;
        sluice_pool_stats st;
        const char *name = "total";
        bool ok = true;
        char why[160] = "";
        if (!total) {
            demo_pool *p = &d->pools[i];
            name = p->name;
            sluice_pool_stats_get(p->pool, &st);
            uint64_t accepted = atomic_load(&p->accepted);
            uint64_t handed = atomic_load(&p->handed_back);
            uint64_t outcomes = st.completed + st.failed + st.panicked + st.dropped + st.shed + st.abandoned;
            if (st.running != 0 || st.queue_depth != 0) {
                ok = false;
                snprintf(why, sizeof why, "  (not quiescent: %u running, %zu queued)", st.running,
                         st.queue_depth);
            } else if (st.submitted != outcomes) {
                ok = false;
                snprintf(why, sizeof why, "  (%llu unaccounted)",
                         (unsigned long long)(st.submitted > outcomes ? st.submitted - outcomes
                                                                      : outcomes - st.submitted));
            } else if (p->batcher) {
                ok = reconcile_batched(p, &st, why, sizeof why);
            } else if (accepted > st.submitted) {
                /* submitted may exceed accepted by the admin's health
                 * probes (/health/pools), which are real tasks too. */
                ok = false;
                snprintf(why, sizeof why, "  (producer had %llu accepted)", (unsigned long long)accepted);
            } else if (accepted < st.submitted) {
                snprintf(why, sizeof why, "  (%llu health probes)",
                         (unsigned long long)(st.submitted - accepted));
            } else if (handed != st.dropped + st.shed + st.abandoned) {
                ok = false;
                snprintf(why, sizeof why, "  (abandon handler saw %llu)", (unsigned long long)handed);
            }
            tot.submitted += st.submitted;
            tot.completed += st.completed;
            tot.failed += st.failed;
            tot.panicked += st.panicked;
            tot.dropped += st.dropped;
            tot.shed += st.shed;
            tot.abandoned += st.abandoned;
            tot_refused += atomic_load(&p->refused);
            all_ok &= ok;
        } else {
            st = tot;
            ok = all_ok;
        }
        fprintf(out, "%-8.8s %9llu %9llu %7llu %8llu %7llu %5llu %9llu  %s%s\n", name,
                (unsigned long long)st.submitted, (unsigned long long)st.completed,
                (unsigned long long)st.failed, (unsigned long long)st.panicked,
                (unsigned long long)st.dropped, (unsigned long long)st.shed, (unsigned long long)st.abandoned,
                ok ? "ok" : "MISMATCH", why);
    }
    for (size_t i = 0; i < d->pool_count; i++) {
        if (d->pools[i].batcher) {
            reconcile_batched_line(&d->pools[i], out);
        }
    }
    fprintf(out, "refused at submit (never accepted; the producer kept them): %llu\n",
            (unsigned long long)tot_refused);
    uint64_t replayed = 0;
    for (size_t i = 0; i < d->pool_count; i++) {
        replayed += atomic_load(&d->pools[i].replayed);
    }
    if (d->opts.spool_path) {
        fprintf(out, "replayed from the spool at start (counted as accepted above): %llu\n",
                (unsigned long long)replayed);
    }
    fprintf(out, "%s\n",
            all_ok ? "balanced: every accepted notification is accounted for"
                   : "NOT balanced: some accepted notification is unaccounted for");
    return all_ok;
}
