/*
 * bench/control_convergence.c - sluice-bench-control: the `convergence`
 * workload of issue 14. How fast does each pool controller (sluice/control.h)
 * bring K to the Little's-law K after the task run time steps 5x up, and
 * back, and by how much does it overshoot?
 *
 * Design. A simulated pool in simulated time (1 ms steps, a fixed seed):
 * Poisson arrivals at `rate`, a bounded FIFO queue (REJECT when full), at
 * most K tasks running, each running base(t) x jitter, where base steps
 * from `base` to 5 x base at `up_at` and back at `down_at`, and grows with
 * concurrency past the downstream's `capacity` (processor sharing). The
 * controller under test is the library's own, fed through a
 * sluice_control_source that reads the model's counters and run-time
 * histogram and resizes the model's K, on a fake clock moved by the
 * simulation: the same code a service runs, deterministic, and minutes of
 * simulated time in a second of real time.
 *
 * Two scenarios. 1: the downstream serves far more at once than the pool
 * sends, so the step is a slower downstream and the right K is the
 * Little's-law K. 2: it serves only 0.6 x the slow phase's Little's-law K
 * at once, so past that K only adds run time: the right K is near the
 * downstream's capacity, and the limiters should hold it there while
 * auto-tune follows demand.
 *
 * Figures, per controller (scenario 1):
 *   settle    seconds after the step until K enters, and then stays in,
 *             [0.9, 1.1] x the Little's-law K (offered rate x base run time)
 *             for the rest of the phase ("never" when it does not)
 *   overshoot past the Little's-law K in the step's direction: the largest K
 *             over it after the step up, the smallest under it after the
 *             step down
 *   band      max - min of K over the last 10 s of the phase (oscillation)
 *   goodput   completed / offered over the whole run, and rejected
 *   trace     K every 2 s
 * Scenario 2: K at the end of the slow phase, its mean and band over the
 * last 10 s, the run-time p99 of the slow phase (exact, from every task),
 * the settle after the step back, goodput.
 * A benchmark prints figures; nothing here fails on a number.
 *
 * Usage: sluice-bench-control [--quick] [--rate R] [--base-ms B]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sluice.h"

#define STEP_NS SLUICE_NS_PER_MS
#define MAX_K 2000
#define QUEUE_CAP 20000

typedef struct model {
    /* parameters */
    double rate;   /* arrivals per second */
    double base_s; /* run time before the step */
    double factor; /* the step */
    double up_at_s, down_at_s, end_s;
    unsigned capacity; /* downstream: beyond this many at once, run time grows */
    /* state */
    uint64_t rng;
    double next_arrival_s;
    double queue[QUEUE_CAP]; /* arrival times, a ring */
    size_t q_head, q_len;
    double finish[MAX_K]; /* running tasks' finish times */
    double started[MAX_K];
    unsigned running;
    /* run times of the tasks that finished in the slow phase (for its p99) */
    double *slow_runs;
    size_t slow_n, slow_cap;
    sluice_pool_stats st;
    sluice_histogram h;
} model;

static double uniform(model *m)
{
    /* xorshift64*: deterministic for a fixed seed. */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (double)((m->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double base_at(const model *m, double t)
{
    return t >= m->up_at_s && t < m->down_at_s ? m->base_s * m->factor : m->base_s;
}

static void m_stats(void *user, sluice_pool_stats *out)
{
    model *m = user;
    m->st.running = m->running;
    m->st.queue_depth = m->q_len;
    m->st.queue_capacity = QUEUE_CAP;
    *out = m->st;
}

static void m_hist(void *user, sluice_histogram *out)
{
    *out = ((model *)user)->h;
}

static sluice_err m_resize(void *user, unsigned k)
{
    model *m = user;
    if (k == 0 || k > MAX_K) {
        return SLUICE_EINVAL;
    }
    m->st.capacity = k;
    m->st.resize_events++;
    return SLUICE_OK;
}

static void observe(model *m, double run_s)
{
    size_t i = 0;
    while (i < m->h.bucket_count && run_s > m->h.bounds[i]) {
        i++;
    }
    m->h.counts[i]++;
    m->h.count++;
    m->h.sum_seconds += run_s;
}

/* One millisecond of the model ending at t. */
static void step(model *m, double t)
{
    /* Completions. */
    for (unsigned i = 0; i < m->running;) {
        if (m->finish[i] <= t) {
            observe(m, m->finish[i] - m->started[i]);
            if (t >= m->up_at_s && t < m->down_at_s && m->slow_n < m->slow_cap) {
                m->slow_runs[m->slow_n++] = m->finish[i] - m->started[i];
            }
            m->st.completed++;
            m->finish[i] = m->finish[m->running - 1];
            m->started[i] = m->started[m->running - 1];
            m->running--;
        } else {
            i++;
        }
    }
    /* Arrivals. */
    while (m->next_arrival_s <= t) {
        if (m->q_len == QUEUE_CAP) {
            m->st.rejected++;
        } else {
            m->queue[(m->q_head + m->q_len) % QUEUE_CAP] = m->next_arrival_s;
            m->q_len++;
            m->st.submitted++;
        }
        m->next_arrival_s += -log(1.0 - uniform(m)) / m->rate;
    }
    /* Starts, while fewer than K run. */
    while (m->q_len > 0 && m->running < m->st.capacity && m->running < MAX_K) {
        m->q_head = (m->q_head + 1) % QUEUE_CAP;
        m->q_len--;
        double run = base_at(m, t);
        unsigned now_running = m->running + 1;
        if (now_running > m->capacity) {
            run *= (double)now_running / m->capacity;
        }
        run *= 0.8 + 0.4 * uniform(m); /* +-20% jitter */
        m->started[m->running] = t;
        m->finish[m->running] = t + run;
        m->running++;
    }
}

typedef struct variant {
    const char *name;
    sluice_control_mode mode;
    bool autotune;
} variant;

typedef struct phase_fig {
    double little_k;
    double settle_s; /* < 0: never */
    double overshoot;
    unsigned band;
    unsigned k_end;
} phase_fig;

/* Overshoot: past the target in the step's direction (above it after a
 * step up, below it after a step down). */
static void phase_figures(const unsigned *trace_k, const double *trace_t, size_t n, double from, double to,
                          double little_k, bool up, phase_fig *f)
{
    f->little_k = little_k;
    f->settle_s = -1;
    f->overshoot = 0;
    unsigned lo = UINT32_MAX, hi = 0, peak = 0, trough = UINT32_MAX;
    bool in_band = false;
    for (size_t i = 0; i < n; i++) {
        if (trace_t[i] < from || trace_t[i] >= to) {
            continue;
        }
        unsigned k = trace_k[i];
        peak = k > peak ? k : peak;
        trough = k < trough ? k : trough;
        bool ok = k >= 0.9 * little_k && k <= 1.1 * little_k;
        if (ok && !in_band) {
            f->settle_s = trace_t[i] - from;
        }
        if (!ok) {
            f->settle_s = -1;
        }
        in_band = ok;
        if (trace_t[i] >= to - 10) {
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        f->k_end = k;
    }
    if (up) {
        f->overshoot = peak > little_k ? peak / little_k - 1 : 0;
    } else {
        f->overshoot = trough < little_k ? 1 - trough / little_k : 0;
    }
    f->band = hi >= lo ? hi - lo : 0;
}

/* The controller's own cost on a real pool: ns per decision (a stats and
 * a histogram snapshot, the window arithmetic, the rule), deciding on
 * every tick of an interval of 1 ns. */
static double decision_cost_ns(unsigned pools_k)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "cost";
    pc.workers = pools_k;
    pc.queue_capacity = 1024;
    sluice_pool *pool = NULL;
    if (sluice_pool_create(&pc, &pool, NULL, 0) != SLUICE_OK) {
        return -1;
    }
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.autotune = true;
    cc.interval_ns = 1;
    cc.cooldown_ns = 1;
    sluice_pool_control *ctl = NULL;
    if (sluice_pool_control_create(pool, &cc, &ctl, NULL, 0) != SLUICE_OK) {
        sluice_pool_destroy(pool);
        return -1;
    }
    const int n = 20000;
    uint64_t t0 = sluice_clock_now(NULL);
    for (int i = 0; i < n; i++) {
        sluice_pool_control_tick(ctl);
    }
    uint64_t t1 = sluice_clock_now(NULL);
    sluice_pool_control_stats st;
    sluice_pool_control_stats_get(ctl, &st);
    sluice_pool_control_destroy(ctl);
    sluice_pool_destroy(pool);
    return st.ticks ? (double)(t1 - t0) / (double)st.ticks : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct scenario {
    double rate, base_ms, up_at, down_at, end;
    unsigned k0, max_k, capacity;
    bool congested; /* the downstream serves fewer at once than the slow phase's Little's-law K */
} scenario;

static const variant variants[] = {
    {"fixed (no controller)", SLUICE_CONTROL_FIXED, false},
    {"autotune (Little's law)", SLUICE_CONTROL_FIXED, true},
    {"aimd", SLUICE_CONTROL_AIMD, false},
    {"gradient2", SLUICE_CONTROL_GRADIENT2, false},
    {"vegas", SLUICE_CONTROL_VEGAS, false},
    {"gradient2 + autotune", SLUICE_CONTROL_GRADIENT2, true},
};
#define NV (sizeof variants / sizeof variants[0])

/* Run every controller on the scenario and print its table and K traces.
 * Returns 0, or 1 when something could not be set up. */
static int run_scenario(const scenario *sc)
{
    double little_lo = sc->rate * sc->base_ms / 1000, little_hi = little_lo * 5;
    if (!sc->congested) {
        printf("%-24s | %9s %9s %5s %5s | %9s %9s %5s %5s | %8s %8s\n", "controller", "up:settle",
               "overshoot", "band", "K", "dn:settle", "overshoot", "band", "K", "goodput", "rejected");
    } else {
        printf("%-24s | %6s %6s %5s %9s %9s | %9s %5s | %8s %8s\n", "controller", "slow:K", "mean K", "band",
               "p99 run", "x no-load", "dn:settle", "K", "goodput", "rejected");
    }
    unsigned *traces[NV];
    size_t trace_n = 0;
    for (size_t v = 0; v < NV; v++) {
        model *m = calloc(1, sizeof *m);
        if (!m) {
            return 1;
        }
        m->rate = sc->rate;
        m->base_s = sc->base_ms / 1000;
        m->factor = 5;
        m->up_at_s = sc->up_at;
        m->down_at_s = sc->down_at;
        m->end_s = sc->end;
        m->capacity = sc->capacity;
        m->rng = 0x9E3779B97F4A7C15ull;
        m->st.capacity = sc->k0;
        m->slow_cap = (size_t)(sc->rate * (sc->down_at - sc->up_at) * 1.2) + 1024;
        m->slow_runs = malloc(m->slow_cap * sizeof *m->slow_runs);
        m->h.bucket_count = SLUICE_HIST_DEFAULT_BUCKETS;
        for (size_t i = 0; i < m->h.bucket_count; i++) {
            m->h.bounds[i] = 0.0001 * (double)(1u << i);
        }
        m->next_arrival_s = -log(1.0 - uniform(m)) / sc->rate;
        sluice_fake_clock clk;
        sluice_fake_clock_init(&clk, 0);
        sluice_control_source src = {m_stats, m_hist, m_resize, m};
        sluice_pool_control_config cc;
        sluice_pool_control_config_init(&cc);
        cc.mode = variants[v].mode;
        cc.autotune = variants[v].autotune;
        cc.min_limit = 1;
        cc.max_limit = sc->max_k;
        cc.interval_ns = SLUICE_NS_PER_SEC;
        cc.cooldown_ns = SLUICE_NS_PER_SEC;
        cc.max_step = 32;
        cc.source = &src;
        cc.clock = &clk.clock;
        sluice_pool_control *ctl = NULL;
        char err[200];
        if (!m->slow_runs || sluice_pool_control_create(NULL, &cc, &ctl, err, sizeof err) != SLUICE_OK) {
            fprintf(stderr, "sluice-bench-control: %s\n", m->slow_runs ? err : "out of memory");
            return 1;
        }
        size_t samples = (size_t)(sc->end * 2) + 2;
        unsigned *tk = calloc(samples, sizeof *tk);
        double *tt = calloc(samples, sizeof *tt);
        traces[v] = calloc((size_t)(sc->end / 2) + 2, sizeof **traces);
        if (!tk || !tt || !traces[v]) {
            return 1;
        }
        size_t n = 0, tn = 0;
        uint64_t steps = (uint64_t)(sc->end * 1000);
        for (uint64_t s = 1; s <= steps; s++) {
            double t = (double)s / 1000;
            step(m, t);
            sluice_fake_clock_set(&clk, s * STEP_NS);
            sluice_pool_control_tick(ctl);
            if (s % 500 == 0 && n < samples) { /* K twice a second for the figures */
                tk[n] = m->st.capacity;
                tt[n] = t;
                n++;
            }
            if (s % 2000 == 0) {
                traces[v][tn++] = m->st.capacity;
            }
        }
        trace_n = tn;
        phase_fig up, dn;
        phase_figures(tk, tt, n, sc->up_at, sc->down_at, little_hi, true, &up);
        phase_figures(tk, tt, n, sc->down_at, sc->end, little_lo, false, &dn);
        char su[16], sd[16];
        snprintf(su, sizeof su, up.settle_s < 0 ? "never" : "%.1fs", up.settle_s);
        snprintf(sd, sizeof sd, dn.settle_s < 0 ? "never" : "%.1fs", dn.settle_s);
        uint64_t offered = m->st.submitted + m->st.rejected;
        double goodput = offered ? 100.0 * (double)m->st.completed / (double)offered : 0;
        if (!sc->congested) {
            printf("%-24s | %9s %8.0f%% %5u %5u | %9s %8.0f%% %5u %5u | %7.1f%% %8llu\n", variants[v].name,
                   su, up.overshoot * 100, up.band, up.k_end, sd, dn.overshoot * 100, dn.band, dn.k_end,
                   goodput, (unsigned long long)m->st.rejected);
        } else {
            /* K over the last 10 s of the slow phase, and the run-time p99 of
             * the whole slow phase (its first seconds included). */
            double sum = 0;
            unsigned cnt = 0;
            for (size_t i = 0; i < n; i++) {
                if (tt[i] >= sc->down_at - 10 && tt[i] < sc->down_at) {
                    sum += tk[i];
                    cnt++;
                }
            }
            qsort(m->slow_runs, m->slow_n, sizeof *m->slow_runs, cmp_double);
            double p99 = m->slow_n ? m->slow_runs[(size_t)(0.99 * (double)(m->slow_n - 1))] : 0;
            double noload = m->base_s * m->factor;
            printf("%-24s | %6u %6.1f %5u %7.1fms %8.2fx | %9s %5u | %7.1f%% %8llu\n", variants[v].name,
                   up.k_end, cnt ? sum / cnt : 0, up.band, p99 * 1000, p99 / noload, sd, dn.k_end, goodput,
                   (unsigned long long)m->st.rejected);
        }
        sluice_pool_control_destroy(ctl);
        free(tk);
        free(tt);
        free(m->slow_runs);
        free(m);
    }
    printf("\nK trace (every 2 s of simulated time; the step up at %.0fs, back at %.0fs):\n", sc->up_at,
           sc->down_at);
    printf("%-24s |", "t (s)");
    for (size_t i = 0; i < trace_n; i++) {
        printf(" %4zu", (i + 1) * 2);
    }
    printf("\n");
    for (size_t v = 0; v < NV; v++) {
        printf("%-24s |", variants[v].name);
        for (size_t i = 0; i < trace_n; i++) {
            printf(" %4u", traces[v][i]);
        }
        printf("\n");
        free(traces[v]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    double rate = 2000, base_ms = 10;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            rate = atof(argv[++i]);
        } else if (strcmp(argv[i], "--base-ms") == 0 && i + 1 < argc) {
            base_ms = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: sluice-bench-control [--quick] [--rate R] [--base-ms B]\n");
            return 2;
        }
    }
    if (!(rate > 0 && rate <= 1e6 && base_ms > 0 && base_ms <= 1000)) {
        fprintf(stderr, "sluice-bench-control: --rate must be in (0, 1e6], --base-ms in (0, 1000]\n");
        return 2;
    }
    scenario sc;
    sc.rate = rate;
    sc.base_ms = base_ms;
    sc.up_at = quick ? 10 : 20;
    sc.down_at = quick ? 30 : 50;
    sc.end = quick ? 50 : 80;
    double little_lo = rate * base_ms / 1000, little_hi = little_lo * 5;
    sc.k0 = (unsigned)ceil(little_lo * 1.05);
    sc.max_k = (unsigned)(little_hi * 3);
    sc.capacity = (unsigned)ceil(little_hi * 4);
    sc.congested = false;
    printf("sluice-bench-control: convergence (issue 14). Simulated pool, simulated time, seed fixed.\n\n");
    printf(
        "1. A slower downstream. Offered %.0f/s Poisson; run time %.1f ms +-20%%, x5 from %.0fs to %.0fs;\n"
        "downstream serves %u at once (far above what is needed).\n",
        rate, base_ms, sc.up_at, sc.down_at, sc.capacity);
    printf("Little's-law K = rate x run time: %.0f, then %.0f, then %.0f. K starts at %u; bounds [1, %u];\n",
           little_lo, little_hi, little_lo, sc.k0, sc.max_k);
    printf("decisions every 1s; autotune: cooldown 1s, max step 32, hysteresis 0.1, util 0.9/0.3.\n\n");
    if (run_scenario(&sc)) {
        return 1;
    }
    printf("\nsettle: time after the step until K stays within 10%% of Little's-law K for the rest of the "
           "phase;\n"
           "overshoot: past Little's-law K in the step's direction (above after up, below after down); band: "
           "max - min of K in its last 10 s.\n");

    scenario cg = sc;
    cg.congested = true;
    cg.capacity = (unsigned)ceil(little_hi * 0.6);
    printf(
        "\n2. A congested downstream. The same steps, but the downstream serves only %u at once: past that,\n"
        "run time grows with the calls in flight (processor sharing), so throughput in the slow phase is\n"
        "capped at %u / %.0f ms = %.0f/s whatever K, and K past %u only adds run time. The right K is near\n"
        "%u, not the Little's-law K (%.0f, which itself grows with the run time K causes).\n\n",
        cg.capacity, cg.capacity, base_ms * 5, cg.capacity / (base_ms * 5 / 1000), cg.capacity, cg.capacity,
        little_hi);
    if (run_scenario(&cg)) {
        return 1;
    }
    printf(
        "\nslow:K: K at the end of the slow phase; mean K and band: over its last 10 s (probe windows\n"
        "included); p99 run: the run-time p99 of tasks finished in the slow phase, and as a multiple of the\n"
        "downstream's no-load run time (%.0f ms); dn:settle as in 1. Goodput hardly tells them apart: past\n"
        "%u nothing serves more than %.0f/s, and the queue (%u) holds the excess until the step back.\n",
        base_ms * 5, cg.capacity, cg.capacity / (base_ms * 5 / 1000), QUEUE_CAP);

    double cost = decision_cost_ns(8);
    printf(
        "\ncontroller cost on a real pool: %.2f us per decision (stats + histogram snapshots and the rule);\n"
        "at the default one decision a second that is %.6f%% of one core. The pool's hot path has no\n"
        "controller code: with the controller off nothing runs at all.\n",
        cost / 1000, cost / 1e9 * 100);
    return 0;
}
