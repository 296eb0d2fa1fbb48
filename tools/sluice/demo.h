/*
 * tools/sluice/demo.h - the parts of `sluice demo`, shared between
 * cmd_demo.c (flags, wiring, shutdown), demo_sim.c (producers and the
 * simulated downstreams), demo_view.c (live view, reconciliation) and
 * demo_admin.c (the admin server, when built) and demo_spool.c (the
 * spool of handed-back notifications, --spool).
 *
 * Threads: main (flags, then sluice_service_run, then the report), the
 * service's signal and reload threads, one producer per pool, the view
 * thread, the pools' workers, and the admin server's threads. Shared state
 * is atomics (counters, flags) or immutable after start (demo_opts, names).
 *
 * A task's argument is a notification, not a pointer: its pool's index,
 * whether it was replayed from the spool, and its id, packed in a
 * uintptr_t (DEMO_NOTE_*), so a handed-back task can be written to the
 * spool as "which notification" without any allocation per task.
 *
 * A pool with `demo_batch: N` (email in the built-in config) is batched:
 * its producer (and the spool's replay) adds each notification, the same
 * packed pointer, to a sluice_batcher on the pool instead of submitting
 * it, and one pool task sends up to N of them in one simulated downstream
 * call. A batch that fails (--error-rate, --panic-rate, a stall cut by the
 * drain, a refused or abandoned batch task, items still unsent at the
 * batcher's drain deadline) reaches demo_on_batch_failed, which hands each
 * notification back as demo_on_abandon does. The batcher is drained when
 * the producers stop and destroyed before the service destroys the pools.
 */
#ifndef SLUICE_TOOLS_DEMO_H
#define SLUICE_TOOLS_DEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/batcher.h"
#include "sluice/config.h"
#include "sluice/pool.h"
#include "sluice/service.h"

#define DEMO_MAX_POOLS 8

/* A notification as a task argument: bits 0-2 the pool's index, bit 3 set
 * when it was replayed from the spool, bits 4-63 its id. */
#define DEMO_NOTE(pool_index, replayed, id)                                                                  \
    ((void *)(uintptr_t)(((uint64_t)(id) << 4) | ((replayed) ? 8u : 0u) | ((unsigned)(pool_index)&7u)))
#define DEMO_NOTE_POOL(arg) ((unsigned)((uintptr_t)(arg)&7u))
#define DEMO_NOTE_REPLAYED(arg) ((((uintptr_t)(arg)) & 8u) != 0)
#define DEMO_NOTE_ID(arg) ((uint64_t)((uintptr_t)(arg) >> 4))
#define DEMO_NOTE_ID_MAX ((UINT64_C(1) << 60) - 1)

/* A downstream event injected with --slowdown or --stall. */
typedef struct demo_fault {
    char pool[SLUICE_POOL_NAME_MAX + 1];
    uint64_t at_ns;  /* from the start of the run */
    uint64_t for_ns; /* 0 = until the end */
    double factor;   /* slowdown: latency multiplier; stall: 0 */
    bool stall;
} demo_fault;

typedef struct demo_opts {
    double rate;             /* notifications per second, all pools */
    uint64_t duration_ns;    /* 0 = until a signal */
    const char *config_path; /* NULL = built-in */
    bool print_config;
    const char *listen; /* NULL = the config's service.listen */
    double panic_rate;  /* 0..1, per task */
    double error_rate;  /* 0..1, per task */
    demo_fault faults[8];
    size_t fault_count;
    uint64_t seed;
    int view;               /* DEMO_VIEW_* */
    int log_format;         /* sluice_log_format: 0 logfmt, 1 json */
    const char *spool_path; /* --spool: NULL = handed-back notifications are only counted */
    /* --admin-token-file, else service.admin_token_file: the token; "" =
     * none. At most SLUICE_CONFIG_ADMIN_TOKEN_MAX (= SLUICE_ADMIN_TOKEN_MAX;
     * admin.h is optional here). */
    char admin_token[SLUICE_CONFIG_ADMIN_TOKEN_MAX + 1];
    const char *scenario; /* --scenario: NULL = the notifications service; "saas" (demo_saas.c) */
    /* --downstream-at HOST:PORT: pools bound to a cluster budget call a
     * real downstream there (demo_cluster.c); port 0 = simulated. */
    char downstream_host[64];
    unsigned downstream_port;
    /* --spike FxAT[+D]: every producer offers `spike_factor` times its rate
     * from spike_at_ns after the start, for spike_for_ns (0 = to the end);
     * spike_factor 0 = no spike. */
    double spike_factor;
    uint64_t spike_at_ns;
    uint64_t spike_for_ns;
} demo_opts;

/* `sluice demo --scenario saas` (demo_saas.c): the multi-tenant case
 * study through a FIFO and a fair pool side by side; returns an exit
 * status. Uses o->duration_ns (0 = 10 s) and o->seed. */
int demo_scenario_saas(const demo_opts *o);

enum { DEMO_VIEW_AUTO = 0, DEMO_VIEW_TTY, DEMO_VIEW_PLAIN, DEMO_VIEW_NONE };

/* One destination: its pool, its producer and its simulated downstream. */
typedef struct demo_pool {
    struct demo *demo;
    unsigned index;
    char name[SLUICE_POOL_NAME_MAX + 1]; /* a copy: outlives config reloads */
    sluice_pool *pool;
    double rate; /* this pool's share of --rate */
    /* Latency distribution (log-normal from p50 and p99), ns; atomics so a
     * reload can change them while tasks read them. */
    _Atomic uint64_t p50_ns, p99_ns;

    pthread_t producer;
    bool producer_started;
    bool remote; /* bound to the cluster's budget: calls --downstream-at when given */

    /* Counters kept by the demo itself, to check the pool's own. */
    atomic_uint_fast64_t accepted;    /* submit returned SLUICE_OK */
    atomic_uint_fast64_t refused;     /* submit refused (timeout, full): never accepted */
    atomic_uint_fast64_t handed_back; /* abandon handler calls */
    atomic_uint_fast64_t panics_seen; /* panic handler calls */
    atomic_uint_fast64_t replayed;    /* accepted from the spool at start (also in `accepted`) */
    /* demo_batch: the batcher its notifications go through (NULL: one task
     * each), created after the pool and destroyed before it. */
    sluice_batcher *batcher;
    unsigned batch_size;                    /* demo_batch (0: not batched) */
    uint64_t batch_wait_ns;                 /* demo_batch_wait */
    uint64_t batch_drain_ns;                /* the batcher's drain deadline at stop_producers */
    atomic_uint_fast64_t batch_delivered;   /* items of batches the send accepted (demo's own count) */
    atomic_uint_fast64_t batch_handed_back; /* items the batch failure handler handed back */
    atomic_uint_fast64_t batch_failures;    /* failure handler calls */
    /* demo_notifications_refused_total{name=...} when the admin server
     * runs (set before the producers start), else NULL. */
    void *refused_series;

    /* The view's previous snapshot, for per-second rates. View thread only. */
    uint64_t last_done;
    uint64_t last_batches, last_batch_items; /* sealed batches and their items (batched pools) */
    uint64_t last_hist[SLUICE_HIST_MAX_BUCKETS + 1];
    uint64_t last_wait_hist[SLUICE_HIST_MAX_BUCKETS + 1];
} demo_pool;

typedef struct demo {
    demo_opts opts;
    sluice_config *config;     /* in force; replaced by reload (signal thread) */
    pthread_mutex_t config_mu; /* guards `config` against the view/report readers */
    demo_pool pools[DEMO_MAX_POOLS];
    size_t pool_count;
    sluice_service *svc; /* owns the pools; drains them on SIGTERM */
    uint64_t start_ns;   /* system clock */
    /* Set by SIGUSR1 (a signal handler: lock-free): every --stall ends at
     * once, the stalled calls return and the downstream answers again. */
    atomic_bool stalls_ended;
    atomic_bool stop_producers;
    atomic_bool view_stop;
    pthread_t view_thread;
    atomic_bool view_started; /* read by demo_log from any thread */
    bool tty;

    /* Log lines shown under the live view (the last few). */
    pthread_mutex_t log_mu;
    char log_lines[6][160];
    unsigned log_next;

    char service_name[64]; /* a copy: outlives config reloads */
    void *admin;           /* demo_admin's server, or NULL */
    void *logger;          /* sluice_logger for pool events (logfmt/json), or NULL */
    char admin_url[96];
    atomic_uint_fast64_t next_id; /* the next notification id */
    struct demo_spool *spool;     /* --spool, or NULL */
    void *sync_metrics;           /* sluice_sync_metrics for the batchers, or NULL */
    /* A thread the demo needs could not be started: the run is shut down
     * at once and exits 1 (issue 12.12). Set on the main thread. */
    bool start_failed;
    /* The config's cluster: section, joined (demo_cluster.c); NULL without one. */
    struct sluice_cluster_join *join;
    struct sluice_dsem *dsem; /* strict mode: a permit around each remote call */
} demo;

/* demo_sim.c */
/* The demo's one instance (one per process), for tasks and handlers whose
 * argument is a notification. Set before any pool exists. */
extern demo *demo_instance;
int demo_task(void *arg);
bool demo_downstream_call(uint64_t until, bool stalled);
/* Starts a producer per pool; false (each failure said on stderr) when a
 * thread could not be started. */
bool demo_start_producers(demo *d);
void demo_join_producers(demo *d);
/* pthread_create, unless SLUICE_DEMO_FAIL_THREADS names `what` ("view",
 * "producer"): a test hook that fails it as RLIMIT_NPROC would (root, who
 * runs CI, is exempt from the limit). Returns 0 or an errno value. */
int demo_thread_create(pthread_t *thread, void *(*start)(void *), void *arg, const char *what);
void demo_on_abandon(const sluice_abandoned *task, void *user);
void demo_on_panic(const sluice_panic_info *info, void *user);
void demo_on_event(const sluice_pool_event *event, void *user);
/* The batch function and failure handler of a batched pool (user = its
 * demo_pool). */
int demo_batch_send(void **items, size_t n, void *user);
void demo_on_batch_failed(void **items, size_t n, int rc, sluice_batch_failure why, void *user);
/* Batched pools: create each pool's batcher (after the pools, before the
 * replay and the producers) and register it with `sm` (NULL: no metrics);
 * false, said on stderr, when one cannot be created. */
bool demo_start_batchers(demo *d, void *sm);
/* Close each batcher and send its partial batch, waiting up to its
 * batch_drain_ns (stop_producers: before the pools drain). */
void demo_drain_batchers(demo *d);
/* Unregister from `sm` and destroy (before the pools go). */
void demo_destroy_batchers(demo *d, void *sm);
/* Hand one notification back (spool first, then the caller counts); used
 * by the abandon handler and the batch failure handler. */
void demo_hand_back(demo *d, void *note);

/* demo_cluster.c */
/* --downstream-at: a numeric IPv4 HOST:PORT into o; false when malformed. */
bool demo_parse_downstream_at(const char *text, demo_opts *o);
/* Join the config's cluster (no-op without a cluster: section); 0, or
 * -1 with the reason in err. After the service exists. */
int demo_cluster_join(demo *d, char *err, size_t errlen);
/* Leave it (no-op when not joined); before the service is destroyed. */
void demo_cluster_leave(demo *d);
/* One call to --downstream-at held hold_ns (a strict-mode permit around
 * it): 0 delivered, 1 failed, 2 stopped by the drain. */
int demo_remote_call(demo *d, demo_pool *p, uint64_t hold_ns);

/* demo_view.c */
/* The q-quantile of the observations `delta` (counts per bucket of h's
 * bounds), interpolated in its bucket as PromQL's histogram_quantile;
 * INFINITY in the +Inf bucket, -1 when there is nothing. */
double demo_quantile(const sluice_histogram *h, const uint64_t *delta, double q);
void demo_log(demo *d, const char *fmt, ...) SLUICE_PRINTF(2, 3);
/* false (said on stderr) when the view thread could not be started. */
bool demo_start_view(demo *d);
void demo_stop_view(demo *d);
/* Print the reconciliation; returns true when every pool balances. */
bool demo_reconcile(demo *d, FILE *out);

/* demo_admin.c: returns 0, or non-zero with a message in err. */
int demo_admin_start(demo *d, const char *listen, char *err, size_t errlen);
void demo_admin_stop(demo *d);
/* Count a refused submit in the demo's own metric (no-op without admin). */
void demo_admin_count_refused(demo_pool *p);

/* demo_spool.c: --spool FILE. Every notification handed back (abandon
 * handler) is appended to FILE before it is counted; the next start
 * replays FILE. See the file's header for the protocol. */
/* Take over what a previous run left (FILE and FILE.replaying); returns 0,
 * or non-zero with the reason in err. */
int demo_spool_open(demo *d, const char *path, char *err, size_t errlen);
/* Submit the notifications taken over (after the pools exist, before the
 * producers start). */
void demo_spool_replay(demo *d);
/* Append one handed-back notification; false when the write failed. */
bool demo_spool_put(demo *d, void *note);
/* A replayed notification reached its outcome (ran, failed, panicked, or
 * was handed back and spooled again). */
void demo_spool_replayed_done(demo *d);
/* Sync and close; prints one line about the spool to `out`. Returns false
 * when a handed-back notification could not be written. */
bool demo_spool_close(demo *d, FILE *out);

#endif
