/*
 * bench/bench.h - the benchmark driver's private interface: the adapter
 * table every pool implements, the task accounting every task goes
 * through, and the small clock/spin helpers.
 *
 * Not a public header: nothing here is installed or exported.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- adapters ---------------------------------------------------------- */

/* What submit returns. */
enum {
    BENCH_OK = 0,    /* accepted: the task will run exactly once */
    BENCH_EFULL = 1, /* refused because the queue is full (reject policy); the caller still owns it */
    BENCH_EFAIL = 2, /* refused for any other reason: a bench error */
};

/* Adapter flags: which workloads an implementation takes part in. */
enum {
    BENCH_F_SLUICE = 1u << 0,        /* a Sluice configuration */
    BENCH_F_REF = 1u << 1,           /* the raw ring: a reference, not a pool */
    BENCH_F_NO_IDLE = 1u << 2,       /* has no idle workers (thread per task, ring): skip idle/rss */
    BENCH_F_METRICS_ONLY = 1u << 3,  /* a Sluice metrics variant: only in the metrics workload */
    BENCH_F_BURST_ONLY = 1u << 4,    /* a Sluice overflow variant: only in the burst workload */
    BENCH_F_MAIN = 1u << 5,          /* the Sluice row every ratio is taken against */
    BENCH_F_SELFTEST = 1u << 6,      /* deliberately broken: only when named with --impl */
    BENCH_F_NOOP_ONLY = 1u << 7,     /* a Sluice variant shown in the no-op workloads only */
    BENCH_F_OVERLOAD_ONLY = 1u << 8, /* a Sluice overload mode: only in the overload workload (overload.c) */
    BENCH_F_QUEUE = 1u << 9,  /* a Sluice queue discipline: every workload the main row is in but metrics */
    BENCH_F_FLOOR = 1u << 10, /* the floor: the same tasks with no pool (spin, sleep, latency only) */
};

/* How a workload wants the pool built. */
typedef struct bench_pool_opts {
    unsigned workers;      /* K: tasks that may run at once */
    size_t queue_capacity; /* bound for pools that have one */
    unsigned producers;    /* threads that will submit (the ring picks SPSC or MPMC) */
    bool start_all;        /* start all K workers up front where the pool can */
} bench_pool_opts;

typedef struct bench_adapter bench_adapter;

struct bench_adapter {
    const char *name;
    /* One line: what the implementation is and how its queue behaves when
     * full (block, reject, grow memory). */
    const char *overflow;
    unsigned flags;
    /* Slow implementations run N / size_divisor tasks (0 or 1: all N);
     * throughput figures are per task, so they stay comparable. */
    unsigned size_divisor;
    /* Adapter-specific configuration (the Sluice variants). */
    const void *variant;

    /* Build a pool. Returns 0, or non-zero with a message in err. */
    int (*create)(const bench_adapter *self, const bench_pool_opts *opts, void **pool, char *err,
                  size_t errlen);
    /* Optional: per-producer-thread state (libuv: a loop per producer). */
    void *(*producer_begin)(void *pool);
    /* Submit task number idx. Returns BENCH_OK, BENCH_EFULL or BENCH_EFAIL. */
    int (*submit)(void *pool, void *producer, uint64_t idx);
    /* Optional: a producer is done submitting (libuv: run its loop to
     * reap completions). Called on the producer thread. */
    void (*producer_end)(void *pool, void *producer);
    /* Free the pool. Called once every accepted task has completed. */
    void (*destroy)(void *pool);
};

/* The registry, in table order: Sluice variants first, then peers, then
 * the ring. NULL-terminated. */
extern const bench_adapter *const bench_adapters[];

/* The most implementations and workloads one run holds: the driver's result
 * table is sized by them, and adapters.c and workloads.c check their lists
 * against them when they compile. */
#define BENCH_MAX_IMPLS 48
#define BENCH_MAX_WORKLOADS 16

/* ---- task accounting ---------------------------------------------------- */

/*
 * Every task of every implementation calls bench_task_run(idx) exactly
 * once: it runs the workload's body and then accounts the task in a
 * per-thread slot (account.c). At the end the count equals the accepted
 * tasks and the hash the sum of bench_mix over their indices, or a task
 * was lost or ran twice.
 */
typedef void (*bench_body_fn)(uint64_t idx);

typedef struct bench_state {
    bench_body_fn body;
    uint64_t spin_iters;  /* for the spin bodies */
    uint64_t *submit_ns;  /* latency: per-task submit time */
    uint64_t *latency_ns; /* latency: per-task start - submit */
    /* The *-malloc workloads: each task's argument is a heap block the
     * producer allocates and the task frees (bench_arg_make/take), as in
     * most services; otherwise the argument is the index itself. */
    bool malloc_arg;
} bench_state;

extern bench_state bench_g;

/* The per-index hash: a bijective 64-bit mixer (splitmix64 finaliser). */
static inline uint64_t bench_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void bench_task_run(uint64_t idx);
void bench_accounting_reset(void);
/* Gives the calling thread its accounting slot now (bench_task_run does
 * it on a thread's first task): a reference thread that must start its
 * timed part as warm as a pool's warmed-up workers. */
void bench_accounting_join(void);
void bench_accounting_sum(uint64_t *count, uint64_t *hash);

/* Tasks carry idx + 1 as their pointer argument (GLib refuses NULL data). */
static inline void *bench_idx_to_ptr(uint64_t idx)
{
    return (void *)(uintptr_t)(idx + 1);
}
static inline uint64_t bench_ptr_to_idx(void *p)
{
    return (uint64_t)(uintptr_t)p - 1;
}

/* A task's argument in the *-malloc workloads: one cache line, as a small
 * request record would be, written by the producer and read by the task. */
#define BENCH_ARG_BYTES 64
typedef struct bench_arg {
    uint64_t idx;
    char payload[BENCH_ARG_BYTES - sizeof(uint64_t)];
} bench_arg;

/* The argument for task idx: idx + 1 as a pointer, or with
 * bench_g.malloc_arg a malloc'ed bench_arg (NULL when malloc fails: the
 * adapter reports BENCH_EFAIL). Called by the producer in submit. */
static inline void *bench_arg_make(uint64_t idx)
{
    if (!bench_g.malloc_arg) {
        return bench_idx_to_ptr(idx);
    }
    bench_arg *a = malloc(sizeof *a);
    if (a) {
        a->idx = idx;
        a->payload[0] = (char)idx;
    }
    return a;
}

/* The task's side: the index, freeing a malloc'ed argument (on the thread
 * that runs the task: the cross-thread free is part of what is measured). */
static inline uint64_t bench_arg_take(void *p)
{
    if (!bench_g.malloc_arg) {
        return bench_ptr_to_idx(p);
    }
    bench_arg *a = p;
    uint64_t idx =
        a->idx + (uint64_t)(a->payload[0] != (char)a->idx); /* a torn record shows up as a wrong index */
    free(a);
    return idx;
}

/* ---- bodies ------------------------------------------------------------- */

void bench_body_noop(uint64_t idx);
void bench_body_spin(uint64_t idx);
void bench_body_sleep_1ms(uint64_t idx);
void bench_body_latency(uint64_t idx);

/* ---- helpers ------------------------------------------------------------ */

uint64_t bench_now_ns(void);
void bench_sleep_ns(uint64_t ns);
/* Spin for `iters` iterations of a loop the compiler cannot remove. */
void bench_spin(uint64_t iters);
/* Iterations of bench_spin that take about target_ns on this machine, and
 * the measured cost of one such spin in *measured_ns. */
uint64_t bench_spin_calibrate(uint64_t target_ns, double *measured_ns);
/* The median wall time of `reps` 1 ms sleeps of the calling thread alone,
 * with the exact timer the sleep workload's tasks ask for. */
double bench_sleep_lone_ns(unsigned reps);
/* Resident set size of this process in KiB (VmRSS), or 0. */
uint64_t bench_rss_kib(void);

/* ---- workloads (workloads.c) and the driver (driver.c) ------------------ */

/* Sizes and settings of one invocation; filled by the driver. */
typedef struct bench_config {
    bool quick;
    unsigned runs;
    unsigned cpus;      /* online CPUs */
    unsigned workers;   /* K for the throughput and latency workloads */
    unsigned producers; /* P for noop-Np */
    uint64_t n_noop;
    uint64_t n_spin;
    uint64_t n_sleep;
    unsigned sleep_workers; /* K for the sleep workload */
    double latency_rate;    /* tasks per second */
    double latency_seconds;
    double idle_seconds;
    unsigned rss_workers;
    size_t queue_capacity; /* bound for the ordinary workloads */
    size_t burst_capacity; /* bound for the burst */
    uint64_t burst_factor; /* the burst is this many times the bound */
    uint64_t spin_iters;   /* ~1 us */
    double spin_ns;        /* measured cost of one ~1 us spin */
    uint64_t burst_iters;  /* ~5 us */
    double burst_ns;
    double sleep_lone_ns; /* a lone thread's 1 ms sleep, median (0: not measured) */
    uint64_t stall_ns;    /* no progress this long: tasks were lost */
} bench_config;

enum { BENCH_RES_OK = 0, BENCH_RES_NA, BENCH_RES_ERROR, BENCH_RES_INTEGRITY };

#define BENCH_COLS 6

/* One measurement, written by the child process through a pipe. */
typedef struct bench_result {
    int status;
    char msg[248];
    double v[BENCH_COLS]; /* v[0] is the primary figure */
} bench_result;

typedef struct bench_workload {
    const char *name;
    const char *title;
    int ncols;
    const char *cols[BENCH_COLS]; /* column headers; cols[0] names the primary figure */
    int better;                   /* +1 higher is better, -1 lower, 0 neither */
    bool (*takes)(const bench_adapter *a);
    void (*measure)(const bench_adapter *a, const bench_config *cfg, bench_result *res);
    /* Writes the workload's parameters as one line into buf. */
    void (*describe)(const bench_config *cfg, char *buf, size_t len);
    /* The self-test adapters run here when named with --impl. */
    bool takes_selftest;
} bench_workload;

extern const bench_workload bench_workloads[];

/* The overload workload (overload.c): its rows, measurement and line. */
bool bench_takes_overload(const bench_adapter *a);
void bench_m_overload(const bench_adapter *a, const bench_config *cfg, bench_result *res);
void bench_d_overload(const bench_config *cfg, char *buf, size_t len);
extern const size_t bench_workload_count;

#endif /* SLUICE_BENCH_H */
