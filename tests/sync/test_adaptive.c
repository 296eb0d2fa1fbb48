/*
 * tests/sync/test_adaptive.c - the adaptive concurrency limiter: config
 * errors, AIMD's one-per-window growth and once-per-window backoff, the
 * RTT threshold, min/max clamps, gradient2 against a simulated downstream
 * (settles near the Little's-law K, follows a 5x latency step up and back,
 * stays in a narrow band at steady state), the window rules of
 * sluice_adaptive_observe (a rise that does not fall with the limit is
 * re-based by a probe at half the limit, one that does is congestion and
 * backs off at once, a re-base that leaves the window still high
 * corrects as well, demand caps and speeds growth and an unused limit
 * falls to it), blocking acquire woken by a
 * release, timeouts on the fake clock, close, release misuse, and a
 * threaded stress that checks the limit is never exceeded.
 *
 * Time is a fake clock; the simulation is a single-threaded event loop
 * that advances it to the next completion. Nothing sleeps.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/adaptive.h"
#include "common/wait.h"

#define MS SLUICE_NS_PER_MS

static sluice_adaptive *make(sluice_adaptive_config *cfg)
{
    sluice_adaptive *a = NULL;
    char err[160] = "";
    sluice_err rc = sluice_adaptive_create(cfg, &a, err, sizeof err);
    if (rc) {
        fprintf(stderr, "create: %s\n", err);
    }
    assert_int_equal(rc, SLUICE_OK);
    return a;
}

static sluice_adaptive_stats stats(sluice_adaptive *a)
{
    sluice_adaptive_stats st;
    sluice_adaptive_stats_get(a, &st);
    return st;
}

static void expect_create_error(sluice_adaptive_config *cfg, const char *field)
{
    sluice_adaptive *a = NULL;
    char err[160] = "";
    assert_int_equal(sluice_adaptive_create(cfg, &a, err, sizeof err), SLUICE_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, field));
}

static void test_config_errors(void **state)
{
    (void)state;
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.min_limit = 10;
    cfg.max_limit = 5;
    expect_create_error(&cfg, "max_limit");
    sluice_adaptive_config_init(&cfg);
    cfg.max_limit = SLUICE_ADAPTIVE_LIMIT_MAX + 1;
    expect_create_error(&cfg, "max_limit");
    sluice_adaptive_config_init(&cfg);
    cfg.min_limit = 5;
    cfg.initial_limit = 4;
    expect_create_error(&cfg, "initial_limit");
    sluice_adaptive_config_init(&cfg);
    cfg.backoff = 1.0;
    expect_create_error(&cfg, "backoff");
    sluice_adaptive_config_init(&cfg);
    cfg.tolerance = 0.5;
    expect_create_error(&cfg, "tolerance");
    sluice_adaptive_config_init(&cfg);
    cfg.smoothing = 1.5;
    expect_create_error(&cfg, "smoothing");
    sluice_adaptive_config_init(&cfg);
    cfg.queue_size = -1;
    expect_create_error(&cfg, "queue_size");
    sluice_adaptive_config_init(&cfg);
    cfg.mode = (sluice_adaptive_mode)7;
    expect_create_error(&cfg, "mode");
    sluice_adaptive_config_init(&cfg);
    cfg.name = "bad name";
    expect_create_error(&cfg, "name");

    /* Defaults: 0 means min 1, max 1000, initial 20; the extremes are valid. */
    sluice_adaptive_config_init(&cfg);
    sluice_adaptive *a = make(&cfg);
    assert_int_equal(sluice_adaptive_limit_get(a), 20);
    assert_string_equal(sluice_adaptive_name(a), "adaptive");
    sluice_adaptive_destroy(a);
    cfg.max_limit = 5; /* initial defaults to min(20, max) */
    a = make(&cfg);
    assert_int_equal(sluice_adaptive_limit_get(a), 5);
    sluice_adaptive_destroy(a);
    cfg.min_limit = cfg.max_limit = SLUICE_ADAPTIVE_LIMIT_MAX;
    a = make(&cfg);
    assert_int_equal(sluice_adaptive_limit_get(a), SLUICE_ADAPTIVE_LIMIT_MAX);
    sluice_adaptive_destroy(a);
    sluice_adaptive_destroy(NULL);
}

/* Admit n calls (all must succeed). */
static void take(sluice_adaptive *a, sluice_adaptive_token *toks, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_adaptive_try_acquire(a, &toks[i]), SLUICE_OK);
    }
}

static void give(sluice_adaptive *a, sluice_adaptive_token *toks, unsigned n, sluice_adaptive_outcome o)
{
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_adaptive_release(a, &toks[i], o), SLUICE_OK);
    }
}

static void test_aimd_window_growth_and_backoff(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000 * MS);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.min_limit = 2;
    cfg.max_limit = 100;
    cfg.initial_limit = 10;
    cfg.backoff = 0.5;
    cfg.clock = &fc.clock;
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive_token t[64];

    /* Full windows of successes: exactly +1 each. A closed loop keeps the
     * limiter full: each slot is released and taken again. The first pass
     * is IGNOREd: those calls were admitted under half the limit. */
    take(a, t, 10);
    for (unsigned i = 0; i < 10; i++) {
        give(a, t + i, 1, SLUICE_ADAPTIVE_IGNORE);
        take(a, t + i, 1);
    }
    for (unsigned lim = 10; lim < 15; lim++) {
        assert_int_equal(sluice_adaptive_limit_get(a), lim);
        sluice_adaptive_token extra;
        assert_int_equal(sluice_adaptive_try_acquire(a, &extra), SLUICE_EAGAIN);
        sluice_fake_clock_advance(&fc, 10 * MS);
        for (unsigned i = 0; i + 1 < lim; i++) {
            give(a, t + i, 1, SLUICE_ADAPTIVE_SUCCESS);
            assert_int_equal(sluice_adaptive_limit_get(a), lim); /* not yet a full window */
            take(a, t + i, 1);
        }
        give(a, t + lim - 1, 1, SLUICE_ADAPTIVE_SUCCESS);
        assert_int_equal(sluice_adaptive_limit_get(a), lim + 1);
        take(a, t + lim - 1, 2);
    }
    give(a, t, 15, SLUICE_ADAPTIVE_IGNORE);
    assert_int_equal(stats(a).decisions_up, 5);
    assert_int_equal(stats(a).rejected, 5);

    /* An idle limiter learns nothing: one call at a time never grows it. */
    for (int i = 0; i < 100; i++) {
        take(a, t, 1);
        give(a, t, 1, SLUICE_ADAPTIVE_SUCCESS);
    }
    assert_int_equal(sluice_adaptive_limit_get(a), 15);

    /* A burst of drops from one window halves the limit once. */
    take(a, t, 15);
    give(a, t, 15, SLUICE_ADAPTIVE_DROPPED);
    assert_int_equal(sluice_adaptive_limit_get(a), 7);
    sluice_adaptive_stats st = stats(a);
    assert_int_equal(st.decisions_down, 1);
    assert_int_equal(st.drops, 15);
    /* A drop admitted after the decrease backs off again. */
    take(a, t, 1);
    give(a, t, 1, SLUICE_ADAPTIVE_DROPPED);
    assert_int_equal(sluice_adaptive_limit_get(a), 3);
    /* IGNORE changes nothing. */
    uint64_t ignored = stats(a).ignored;
    take(a, t, 3);
    give(a, t, 3, SLUICE_ADAPTIVE_IGNORE);
    assert_int_equal(sluice_adaptive_limit_get(a), 3);
    assert_int_equal(stats(a).ignored, ignored + 3);
    assert_int_equal(stats(a).inflight, 0);
    sluice_adaptive_destroy(a);
}

static void test_aimd_rtt_threshold(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.initial_limit = 10;
    cfg.rtt_threshold_ns = 50 * MS;
    cfg.clock = &fc.clock;
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive_token t[16];
    take(a, t, 10);
    sluice_fake_clock_advance(&fc, 50 * MS); /* exactly the threshold: a success */
    give(a, t, 5, SLUICE_ADAPTIVE_SUCCESS);
    assert_int_equal(stats(a).drops, 0);
    sluice_fake_clock_advance(&fc, 1);
    give(a, t + 5, 5, SLUICE_ADAPTIVE_SUCCESS); /* slower: counted as drops */
    sluice_adaptive_stats st = stats(a);
    assert_int_equal(st.drops, 5);
    assert_int_equal(st.successes, 5);
    assert_int_equal(st.limit, 9); /* 10 * 0.9, once */
    sluice_adaptive_destroy(a);
}

static void test_clamps(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.min_limit = 3;
    cfg.max_limit = 6;
    cfg.initial_limit = 4;
    cfg.backoff = 0.1;
    cfg.clock = &fc.clock;
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive_token t[16];
    for (int round = 0; round < 20; round++) {
        unsigned lim = sluice_adaptive_limit_get(a);
        take(a, t, lim);
        sluice_fake_clock_advance(&fc, MS);
        give(a, t, lim, SLUICE_ADAPTIVE_SUCCESS);
    }
    assert_int_equal(sluice_adaptive_limit_get(a), 6);
    assert_int_equal(stats(a).limit_estimate, 6.0);
    for (int round = 0; round < 5; round++) {
        take(a, t, 1);
        give(a, t, 1, SLUICE_ADAPTIVE_DROPPED);
    }
    assert_int_equal(sluice_adaptive_limit_get(a), 3);
    assert_true(stats(a).limit_estimate >= 3.0);
    take(a, t, 3);
    sluice_adaptive_token extra;
    assert_int_equal(sluice_adaptive_try_acquire(a, &extra), SLUICE_EAGAIN);
    give(a, t, 3, SLUICE_ADAPTIVE_IGNORE);
    sluice_adaptive_destroy(a);

    /* min == max: a fixed limit whatever happens. */
    cfg.min_limit = cfg.max_limit = cfg.initial_limit = 1;
    cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
    a = make(&cfg);
    for (int i = 0; i < 200; i++) {
        take(a, t, 1);
        sluice_fake_clock_advance(&fc, (uint64_t)(i % 7 + 1) * MS);
        give(a, t, 1, i % 5 ? SLUICE_ADAPTIVE_SUCCESS : SLUICE_ADAPTIVE_DROPPED);
        assert_int_equal(sluice_adaptive_limit_get(a), 1);
    }
    sluice_adaptive_destroy(a);
}

static void test_release_misuse(void **state)
{
    (void)state;
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive *b = make(&cfg);
    sluice_adaptive_token t, z;
    memset(&z, 0, sizeof z);
    assert_int_equal(sluice_adaptive_release(a, &z, SLUICE_ADAPTIVE_SUCCESS), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_try_acquire(a, &t), SLUICE_OK);
    assert_int_equal(sluice_adaptive_release(b, &t, SLUICE_ADAPTIVE_SUCCESS), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_release(a, &t, (sluice_adaptive_outcome)9), SLUICE_EINVAL);
    sluice_adaptive_token copy = t;
    assert_int_equal(sluice_adaptive_release(a, &t, SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
    assert_int_equal(sluice_adaptive_release(a, &t, SLUICE_ADAPTIVE_SUCCESS), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_release(a, &copy, SLUICE_ADAPTIVE_SUCCESS), SLUICE_EINVAL);
    assert_int_equal(stats(a).inflight, 0);
    assert_int_equal(sluice_adaptive_try_acquire(NULL, &t), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_acquire_until(a, NULL, 0, NULL), SLUICE_EINVAL);
    sluice_adaptive_destroy(a);
    sluice_adaptive_destroy(b);
}

/* ---- gradient2 against a simulated downstream ------------------------- */

/*
 * The downstream: no-load latency S and a throughput of mu calls per ms.
 * A call admitted with n in flight takes max(S, n / mu): below K = mu * S
 * (Little's law) calls do not queue, above it they do. Demand is unbounded:
 * the loop admits until the limiter refuses, then completes the earliest.
 */
#define SIM_MAX 1024
typedef struct sim {
    sluice_fake_clock fc;
    sluice_adaptive *a;
    sluice_adaptive_token tok[SIM_MAX];
    uint64_t done_at[SIM_MAX];
    unsigned n;
    double trace[4096]; /* the limit after each non-probe window */
    unsigned ntrace;
} sim;

static void sim_run(sim *s, double S_ms, double mu_per_ms, unsigned windows)
{
    uint64_t target = stats(s->a).windows + windows;
    s->ntrace = 0;
    while (stats(s->a).windows < target) {
        while (s->n < SIM_MAX && sluice_adaptive_try_acquire(s->a, &s->tok[s->n]) == SLUICE_OK) {
            double n = s->tok[s->n].inflight;
            double lat = n / mu_per_ms > S_ms ? n / mu_per_ms : S_ms;
            s->done_at[s->n] = sluice_clock_now(&s->fc.clock) + (uint64_t)(lat * MS);
            s->n++;
        }
        assert_true(s->n > 0);
        unsigned first = 0;
        for (unsigned i = 1; i < s->n; i++) {
            if (s->done_at[i] < s->done_at[first]) {
                first = i;
            }
        }
        if (s->done_at[first] > sluice_clock_now(&s->fc.clock)) {
            sluice_fake_clock_set(&s->fc, s->done_at[first]);
        }
        uint64_t w = stats(s->a).windows;
        assert_int_equal(sluice_adaptive_release(s->a, &s->tok[first], SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
        s->n--;
        s->tok[first] = s->tok[s->n];
        s->done_at[first] = s->done_at[s->n];
        sluice_adaptive_stats st = stats(s->a);
        if (st.windows != w && !st.probing && s->ntrace < 4096) {
            s->trace[s->ntrace++] = st.limit_estimate;
        }
        assert_true(st.inflight <= SIM_MAX);
    }
}

/* The last `last` trace entries lie in [lo, hi] and within `band` of each other. */
static void expect_settled(const sim *s, unsigned last, double lo, double hi, double band)
{
    assert_true(s->ntrace >= last);
    double mn = 1e18, mx = 0;
    for (unsigned i = s->ntrace - last; i < s->ntrace; i++) {
        mn = s->trace[i] < mn ? s->trace[i] : mn;
        mx = s->trace[i] > mx ? s->trace[i] : mx;
    }
    printf("  settled: limit in [%.2f, %.2f] over the last %u windows (want [%.1f, %.1f], band %.2f)\n", mn,
           mx, last, lo, hi, band);
    assert_true(mn >= lo);
    assert_true(mx <= hi);
    assert_true(mx - mn <= band);
}

static void test_gradient2_follows_littles_law(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sluice_fake_clock_init(&s->fc, 1000 * MS);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
    cfg.min_limit = 1;
    cfg.max_limit = 400;
    cfg.initial_limit = 10;
    cfg.tolerance = 1.0;
    cfg.queue_size = 4;
    cfg.smoothing = 0.2;
    cfg.probe_interval = 20;
    cfg.clock = &s->fc.clock;
    s->a = make(&cfg);

    /* K = 0.2/ms * 100 ms = 20: settles at about K + queue_size. */
    sim_run(s, 100, 0.2, 200);
    expect_settled(s, 40, 20, 1.25 * 20 + 4, 2.0);
    assert_true(stats(s->a).probes >= 5);

    /* The latency steps 5x (throughput unchanged): K = 100. */
    sim_run(s, 500, 0.2, 400);
    expect_settled(s, 40, 100, 1.25 * 100 + 4, 0.1 * 100);

    /* And back: K = 20 again. */
    sim_run(s, 100, 0.2, 300);
    expect_settled(s, 40, 20, 1.25 * 20 + 4, 2.0);
    sluice_adaptive_stats st = stats(s->a);
    assert_true(st.decisions_up > 0 && st.decisions_down > 0);
    assert_true(st.long_rtt_ns >= 100 * MS && st.long_rtt_ns < 110 * MS);

    while (s->n > 0) {
        assert_int_equal(sluice_adaptive_release(s->a, &s->tok[--s->n], SLUICE_ADAPTIVE_IGNORE), SLUICE_OK);
    }
    sluice_adaptive_destroy(s->a);
    free(s);
}

static void test_gradient2_drops_back_off(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
    cfg.initial_limit = 40;
    cfg.backoff = 0.5;
    cfg.clock = &fc.clock;
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive_token t[64];
    take(a, t, 40);
    give(a, t, 40, SLUICE_ADAPTIVE_DROPPED);
    assert_int_equal(sluice_adaptive_limit_get(a), 20);
    sluice_adaptive_destroy(a);
}

/* ---- the window rules (sluice_adaptive_observe) ------------------------ */

static sluice_adaptive *window_limiter(sluice_adaptive_mode mode, uint32_t initial)
{
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.mode = mode;
    cfg.min_limit = 1;
    cfg.max_limit = 1000;
    cfg.initial_limit = initial;
    return make(&cfg);
}

static void observe_window(sluice_adaptive *a, double rtt_ms, bool in_use, double demand)
{
    sluice_adaptive_window w = {0};
    w.successes = 1000;
    w.mean_rtt_ns = (uint64_t)(rtt_ms * MS);
    w.in_use = in_use;
    w.demand = demand;
    assert_int_equal(sluice_adaptive_observe(a, &w), SLUICE_OK);
}

/* A 5x rise that does not respond to the limit is re-based, not obeyed:
 * the first slow window starts a probe at half the limit (the estimate
 * unchanged), the probe's window is as slow, so the no-load RTT becomes
 * what it measured and the limit never backs off. Before, each slow
 * window shrank gradient2 (to 9 in the bench) until a periodic probe moved
 * the no-load RTT half way. */
static void test_window_probe_rebases(void **state)
{
    (void)state;
    const sluice_adaptive_mode modes[] = {SLUICE_ADAPTIVE_AIMD, SLUICE_ADAPTIVE_GRADIENT2,
                                          SLUICE_ADAPTIVE_VEGAS};
    for (size_t i = 0; i < 3; i++) {
        sluice_adaptive *a = window_limiter(modes[i], 20);
        for (int w = 0; w < 3; w++) {
            observe_window(a, 10, true, 20);
        }
        assert_int_equal(sluice_adaptive_limit_get(a), 20);
        observe_window(a, 50, true, 20); /* the rise */
        sluice_adaptive_stats st = stats(a);
        assert_true(st.probing);
        assert_int_equal(st.limit, 10);
        assert_true(st.limit_estimate >= 20);
        observe_window(a, 50, true, 20); /* the probe: as slow at half the limit */
        st = stats(a);
        assert_false(st.probing);
        assert_int_equal(st.rebases, 1);
        assert_int_equal(st.congestion_verdicts, 0);
        assert_int_equal(st.long_rtt_ns, 50 * MS);
        for (int w = 0; w < 10; w++) {
            observe_window(a, 50, true, 20);
            assert_true(sluice_adaptive_limit_get(a) >= 20);
        }
        assert_int_equal(stats(a).probes, 1); /* nothing more to test */
        sluice_adaptive_destroy(a);
    }
}

/* A rise that falls with the limit is congestion and still backs off, at
 * once to the mode's steady state for the capacity the window showed
 * (C = limit x no-load / RTT = 40 x 10 / 40 = 10; gradient2: 1.5 C + 4 =
 * 19, at most halved: 20). The probe confirmed the no-load RTT, so the
 * next probe waits 4 windows (twice the first wait) while the gradient
 * rule goes on shrinking for the high RTTs. */
static void test_window_probe_congestion(void **state)
{
    (void)state;
    sluice_adaptive *a = window_limiter(SLUICE_ADAPTIVE_GRADIENT2, 40);
    for (int w = 0; w < 3; w++) {
        observe_window(a, 10, true, 0);
    }
    uint32_t before = sluice_adaptive_limit_get(a);
    observe_window(a, 40, true, 0); /* the rise: probe at half */
    assert_true(stats(a).probing);
    assert_int_equal(sluice_adaptive_limit_get(a), before / 2);
    observe_window(a, 12, true, 0); /* at half the limit it is nearly no-load */
    sluice_adaptive_stats st = stats(a);
    assert_false(st.probing);
    assert_int_equal(st.congestion_verdicts, 1);
    assert_int_equal(st.rebases, 0);
    assert_int_equal(st.long_rtt_ns, 10 * MS);
    assert_true(st.limit_estimate >= before * 0.5 - 1e-9 && st.limit_estimate <= before * 0.5 + 1);
    double last = st.limit_estimate;
    for (int w = 0; w < 3; w++) {
        observe_window(a, 40, true, 0);
        st = stats(a);
        assert_false(st.probing);
        assert_true(st.limit_estimate < last);
        last = st.limit_estimate;
    }
    observe_window(a, 40, true, 0);
    assert_true(stats(a).probing);
    sluice_adaptive_destroy(a);

    /* AIMD without an rtt_threshold backs off for the same reason. */
    a = window_limiter(SLUICE_ADAPTIVE_AIMD, 40);
    for (int w = 0; w < 3; w++) {
        observe_window(a, 10, true, 0);
    }
    before = sluice_adaptive_limit_get(a);
    observe_window(a, 40, true, 0);
    observe_window(a, 12, true, 0);
    assert_int_equal(stats(a).congestion_verdicts, 1);
    assert_true(sluice_adaptive_limit_get(a) < before);
    sluice_adaptive_destroy(a);
}

/* A probe that re-bases the no-load RTT but leaves the window before it
 * still too slow for the mode (vegas: 23 queued at limit 100 with RTT 13
 * ms over 10; at half the limit 11 ms, within 0.8 of 13, so re-based to
 * 11, yet 100 x (1 - 11/13) = 15 > beta = 12) moves the limit at once to
 * the steady state for C = 100 x 11 / 13 = 85: C + 4.5 lg C = 93. Before,
 * the limit stayed and the next high window probed again, for ever. */
static void test_window_rebase_still_high(void **state)
{
    (void)state;
    sluice_adaptive *a = window_limiter(SLUICE_ADAPTIVE_VEGAS, 100);
    for (int w = 0; w < 3; w++) {
        observe_window(a, 10, true, 100);
    }
    assert_int_equal(sluice_adaptive_limit_get(a), 100);
    observe_window(a, 13, true, 100);
    assert_true(stats(a).probing);
    assert_int_equal(sluice_adaptive_limit_get(a), 50);
    observe_window(a, 11, true, 100);
    sluice_adaptive_stats st = stats(a);
    assert_int_equal(st.rebases, 1);
    assert_int_equal(st.long_rtt_ns, 11 * MS);
    assert_int_equal(st.limit, 93);
    sluice_adaptive_destroy(a);
}

/* Demand: never grown past, grown toward at once while in use and the RTT
 * is at its no-load value (by tolerance x a window: 20, 30, 45, 67, 100),
 * and fallen to when not in use. With no demand (0) none of it applies. */
static void test_window_demand(void **state)
{
    (void)state;
    sluice_adaptive *a = window_limiter(SLUICE_ADAPTIVE_VEGAS, 20);
    observe_window(a, 10, true, 100);
    assert_int_equal(sluice_adaptive_limit_get(a), 30);
    observe_window(a, 10, true, 100);
    assert_int_equal(sluice_adaptive_limit_get(a), 45);
    for (int w = 0; w < 10; w++) {
        observe_window(a, 10, true, 100);
        assert_true(sluice_adaptive_limit_get(a) <= 100);
    }
    assert_int_equal(sluice_adaptive_limit_get(a), 100);
    observe_window(a, 10, false, 100); /* not in use, at demand: holds */
    assert_int_equal(sluice_adaptive_limit_get(a), 100);
    observe_window(a, 10, false, 21); /* demand fell: so does the limit */
    assert_int_equal(sluice_adaptive_limit_get(a), 21);
    observe_window(a, 10, true, 21.5); /* within the slack: no move */
    assert_int_equal(sluice_adaptive_limit_get(a), 21);
    observe_window(a, 10, true, 0); /* no demand: vegas's own +6 lg x 0.2 */
    assert_int_equal(sluice_adaptive_limit_get(a), 22);
    /* A limit one over a small demand is 10% over it: it falls (the slack
     * to fall is half a call and 2%, to grow one call and 2%). */
    assert_int_equal(sluice_adaptive_limit_set(a, 12), SLUICE_OK);
    observe_window(a, 10, false, 11);
    assert_int_equal(sluice_adaptive_limit_get(a), 11);
    observe_window(a, 10, true, 12); /* within the slack to grow */
    assert_int_equal(sluice_adaptive_limit_get(a), 11);
    sluice_adaptive_destroy(a);

    /* AIMD: one per limit's worth of successes, but never past demand. */
    a = window_limiter(SLUICE_ADAPTIVE_AIMD, 20);
    observe_window(a, 10, true, 25); /* 1000 / 20 = +50, capped at 25 */
    assert_int_equal(sluice_adaptive_limit_get(a), 25);
    observe_window(a, 10, true, 0); /* no demand: + 1000 / 25 */
    assert_int_equal(sluice_adaptive_limit_get(a), 65);
    sluice_adaptive_destroy(a);
}

/* ---- blocking ----------------------------------------------------------- */

typedef struct waiter_arg {
    sluice_adaptive *a;
    uint64_t deadline;
    sluice_adaptive_token tok;
    sluice_err rc;
} waiter_arg;

static void *waiter_main(void *p)
{
    waiter_arg *w = p;
    w->rc = sluice_adaptive_acquire_until(w->a, NULL, w->deadline, &w->tok);
    return NULL;
}

static void wait_waiters(sluice_adaptive *a, unsigned n)
{
    WAIT_FOR(stats(a).waiters == n, "%u waiters on the limiter", n);
}

static void test_blocking_acquire(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.min_limit = cfg.max_limit = cfg.initial_limit = 1;
    cfg.clock = &fc.clock;
    sluice_adaptive *a = make(&cfg);
    sluice_adaptive_token held;
    assert_int_equal(sluice_adaptive_acquire_until(a, NULL, 0, &held), SLUICE_OK);

    /* A release wakes a blocked acquirer (no deadline). */
    waiter_arg w = {.a = a, .deadline = 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_waiters(a, 1);
    assert_int_equal(sluice_adaptive_release(a, &held, SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, SLUICE_OK);
    assert_int_equal(stats(a).inflight, 1);

    /* A deadline on the fake clock: times out when the clock passes it. */
    waiter_arg w2 = {.a = a, .deadline = 5 * MS};
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w2), 0);
    wait_waiters(a, 1);
    sluice_fake_clock_advance(&fc, 5 * MS);
    pthread_join(th, NULL);
    assert_int_equal(w2.rc, SLUICE_ETIMEDOUT);
    assert_int_equal(stats(a).timeouts, 1);

    /* A passed deadline fails even with a slot free; a cancelled ctx too. */
    assert_int_equal(sluice_adaptive_release(a, &w.tok, SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
    sluice_adaptive_token t;
    assert_int_equal(sluice_adaptive_acquire_until(a, NULL, 1, &t), SLUICE_ETIMEDOUT);
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    assert_int_equal(sluice_adaptive_acquire_until(a, ctx, 0, &t), SLUICE_ECANCELED);
    sluice_ctx_release(ctx);
    assert_int_equal(stats(a).canceled, 1);

    /* Close wakes a waiter with SLUICE_ECLOSED; releases still work. */
    assert_int_equal(sluice_adaptive_try_acquire(a, &held), SLUICE_OK);
    waiter_arg w3 = {.a = a, .deadline = 0};
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w3), 0);
    wait_waiters(a, 1);
    sluice_adaptive_close(a);
    pthread_join(th, NULL);
    assert_int_equal(w3.rc, SLUICE_ECLOSED);
    assert_int_equal(sluice_adaptive_try_acquire(a, &t), SLUICE_ECLOSED);
    assert_int_equal(sluice_adaptive_release(a, &held, SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
    assert_true(stats(a).closed);
    sluice_adaptive_destroy(a);
}

/* ---- stress: the limit is never exceeded ------------------------------- */

typedef struct stress_shared {
    sluice_adaptive *a;
    atomic_uint holders;
    atomic_uint max_holders;
    atomic_uint over_limit; /* admissions with more in flight than max_limit */
    unsigned iters;
} stress_shared;

static void *stress_main(void *p)
{
    stress_shared *sh = p;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    for (unsigned i = 0; i < sh->iters; i++) {
        sluice_adaptive_token t;
        sluice_err rc = (i & 1) ? sluice_adaptive_try_acquire(sh->a, &t)
                                : sluice_adaptive_acquire_until(sh->a, NULL, 0, &t);
        if (rc == SLUICE_EAGAIN) {
            continue;
        }
        assert_int_equal(rc, SLUICE_OK);
        unsigned h = atomic_fetch_add(&sh->holders, 1) + 1;
        unsigned m = atomic_load(&sh->max_holders);
        while (h > m && !atomic_compare_exchange_weak(&sh->max_holders, &m, h)) {
        }
        if (t.inflight > 8) {
            atomic_fetch_add(&sh->over_limit, 1);
        }
        sched_yield();
        atomic_fetch_sub(&sh->holders, 1);
        unsigned r = (unsigned)rand_r(&seed) % 10;
        sluice_adaptive_outcome o = r == 0   ? SLUICE_ADAPTIVE_DROPPED
                                    : r == 1 ? SLUICE_ADAPTIVE_IGNORE
                                             : SLUICE_ADAPTIVE_SUCCESS;
        assert_int_equal(sluice_adaptive_release(sh->a, &t, o), SLUICE_OK);
    }
    return NULL;
}

static void run_stress(sluice_adaptive_mode mode)
{
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.mode = mode;
    cfg.min_limit = 1;
    cfg.max_limit = 8;
    cfg.initial_limit = 4;
    cfg.probe_interval = 3;
    stress_shared sh = {0};
    sh.a = make(&cfg);
    sh.iters = 2000u * stress_scale();
    enum { NT = 12 };
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &sh), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
    }
    sluice_adaptive_stats st = stats(sh.a);
    printf("  stress mode %d: acquired %llu, max holders %u, limit %u, up %llu, down %llu\n", (int)mode,
           (unsigned long long)st.acquired, atomic_load(&sh.max_holders), st.limit,
           (unsigned long long)st.decisions_up, (unsigned long long)st.decisions_down);
    assert_true(atomic_load(&sh.max_holders) <= 8);
    assert_int_equal(atomic_load(&sh.over_limit), 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.acquired, st.successes + st.drops + st.ignored);
    assert_true(st.limit >= 1 && st.limit <= 8);
    sluice_adaptive_destroy(sh.a);
}

static void test_stress_aimd(void **state)
{
    (void)state;
    run_stress(SLUICE_ADAPTIVE_AIMD);
}

static void test_stress_gradient2(void **state)
{
    (void)state;
    run_stress(SLUICE_ADAPTIVE_GRADIENT2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_aimd_window_growth_and_backoff),
        cmocka_unit_test(test_aimd_rtt_threshold),
        cmocka_unit_test(test_clamps),
        cmocka_unit_test(test_release_misuse),
        cmocka_unit_test(test_gradient2_follows_littles_law),
        cmocka_unit_test(test_gradient2_drops_back_off),
        cmocka_unit_test(test_window_probe_rebases),
        cmocka_unit_test(test_window_probe_congestion),
        cmocka_unit_test(test_window_demand),
        cmocka_unit_test(test_window_rebase_still_high),
        cmocka_unit_test(test_blocking_acquire),
        cmocka_unit_test(test_stress_aimd),
        cmocka_unit_test(test_stress_gradient2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
