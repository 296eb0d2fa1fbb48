/*
 * tests/tools/test_plan_math.c - the planning arithmetic of `sluice plan`
 * against numbers computed independently of the code under test:
 *
 *   - Erlang C for A = 10 Erlangs and N = 11..15 agents: the values of the
 *     published call-centre Erlang C tables (0.6821, 0.4494, 0.2853, 0.1741,
 *     0.1020), also recomputed from the textbook factorial formula with
 *     exact rational arithmetic (Python fractions) to 1e-12.
 *   - Closed forms: M/M/1 (P(wait) = rho, E[W] = rho S / (1 - rho)),
 *     c = 2, a = 1 (P(wait) = 1/3).
 *   - Little's law worked examples from the reference text (10k/s x 20 ms).
 *   - Error budgets: 99.9% is 43.2 minutes a 30-day month, 99.99% 4.32.
 *
 * Design: each test states where its expected value comes from, so a
 * failure says whether the code or the expectation moved.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../tools/sluice/plan_math.h"

#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void erlang_c_published_table(void **state)
{
    (void)state;
    /* A = 10 Erlangs: published Erlang C table, 4 decimals. */
    assert_near(plan_erlang_c(11, 10), 0.6821, 5e-5);
    assert_near(plan_erlang_c(12, 10), 0.4494, 5e-5);
    assert_near(plan_erlang_c(13, 10), 0.2853, 5e-5);
    assert_near(plan_erlang_c(14, 10), 0.1741, 5e-5);
    assert_near(plan_erlang_c(15, 10), 0.1020, 5e-5);
    /* Exact rational computation (Python fractions, factorial form). */
    assert_near(plan_erlang_c(11, 10), 0.6821182046893324, 1e-12);
    assert_near(plan_erlang_c(55, 48), 0.2387009363780092, 1e-12);
    assert_near(plan_erlang_c(110, 100), 0.23700750028505274, 1e-12);
    assert_near(plan_erlang_c(120, 100), 0.03319589535475705, 1e-12);
    assert_near(plan_erlang_c(3, 2), 4.0 / 9.0, 1e-12);
}

static void erlang_c_closed_forms_and_edges(void **state)
{
    (void)state;
    assert_near(plan_erlang_c(2, 1), 1.0 / 3.0, 1e-12);
    assert_near(plan_erlang_c(1, 0.5), 0.5, 1e-12); /* M/M/1: rho */
    assert_near(plan_erlang_c(1, 0.9), 0.9, 1e-12);
    assert_near(plan_erlang_c(10, 10), 1, 0); /* unstable */
    assert_near(plan_erlang_c(10, 12), 1, 0);
    assert_near(plan_erlang_c(0, 1), 1, 0);
    assert_near(plan_erlang_c(5, 0), 0, 0);
    /* Large c stays finite and within [0, 1] (the factorial form overflows at 171). */
    double big = plan_erlang_c(20000, 19800);
    assert_true(big > 0 && big < 1);
}

static void mmc_wait_mm1(void **state)
{
    (void)state;
    /* M/M/1, rate 0.5/s, S = 1 s: rho 0.5, E[W] = rho S / (1 - rho) = 1 s,
     * P(W > t) = rho e^{-(1 - rho) t}: p99 = ln(50) / 0.5. */
    plan_wait w = plan_mmc_wait(1, 0.5, 1.0);
    assert_true(w.stable);
    assert_near(w.load, 0.5, 1e-12);
    assert_near(w.p_wait, 0.5, 1e-12);
    assert_near(w.mean_wait, 1.0, 1e-12);
    assert_near(w.p99_wait, log(50.0) / 0.5, 1e-9);
    assert_near(w.p999_wait, log(500.0) / 0.5, 1e-9);
}

static void mmc_wait_c12(void **state)
{
    (void)state;
    /* 100/s, S = 100 ms, c = 12 (a = 10): values from the exact computation. */
    plan_wait w = plan_mmc_wait(12, 100, 0.1);
    assert_near(w.p_wait, 0.44938822429827086, 1e-12);
    assert_near(w.utilization, 10.0 / 12.0, 1e-12);
    assert_near(w.mean_wait, 0.022469411214913543, 1e-12);
    assert_near(w.p99_wait, 0.1902651031625129, 1e-9);
    assert_near(w.p999_wait, 0.3053943578122152, 1e-9);
    /* Quantile below the waiting probability's tail is zero. */
    assert_near(plan_wait_quantile(30, 100, 0.1, 0.99), 0, 0);
    plan_wait u = plan_mmc_wait(10, 100, 0.1);
    assert_false(u.stable);
    assert_true(isinf(u.mean_wait) && isinf(u.p99_wait));
}

static void smallest_k_meets_slo(void **state)
{
    (void)state;
    unsigned k = 0;
    /* a = 10, S = 100 ms, p99.9 wait <= 100 ms: K = 14 gives 0.129 s, K = 15
     * gives 0.0925 s (exact computation), so 15. */
    assert_true(plan_smallest_k(100, 0.1, 0.999, 0.1, 1000, &k));
    assert_int_equal(k, 15);
    /* A zero budget needs K with P(wait) <= 0.1%: 22 (21 gives 4.8 ms). */
    assert_true(plan_smallest_k(100, 0.1, 0.999, 0, 1000, &k));
    assert_int_equal(k, 22);
    /* a = 200, S = 40 ms: p99.9 <= 50 ms first at K = 206. */
    assert_true(plan_smallest_k(5000, 0.04, 0.999, 0.05, 10000, &k));
    assert_int_equal(k, 206);
    /* Agrees with plan_wait_quantile around the answer (the two compute
     * Erlang C differently). */
    assert_true(plan_wait_quantile(205, 5000, 0.04, 0.999) > 0.05);
    assert_true(plan_wait_quantile(206, 5000, 0.04, 0.999) <= 0.05);
    /* No load: one worker. */
    assert_true(plan_smallest_k(0, 0.1, 0.999, 0.1, 10, &k));
    assert_int_equal(k, 1);
    /* Not reachable under k_max, negative budget, bad quantile. */
    assert_false(plan_smallest_k(100, 0.1, 0.999, 0.1, 14, &k));
    assert_false(plan_smallest_k(100, 0.1, 0.999, -0.1, 1000, &k));
    assert_false(plan_smallest_k(100, 0.1, 1.0, 0.1, 1000, &k));
}

static void littles_law_examples(void **state)
{
    (void)state;
    /* Reference text: "K = 10000 x per_request_latency": 10k/s x 20 ms = 200. */
    assert_near(plan_littles_law(10000, 0.020, 1), 200, 1e-9);
    assert_int_equal(plan_ceil_workers(plan_littles_law(10000, 0.020, 1)), 200);
    /* Headroom 2x: plan for 20k/s. */
    assert_int_equal(plan_ceil_workers(plan_littles_law(10000, 0.020, 2)), 400);
    /* 0.1 * 2000 is 200.00000000000003 in binary: still 200. */
    assert_int_equal(plan_ceil_workers(0.1 * 2000), 200);
    assert_int_equal(plan_ceil_workers(200.5), 201);
    assert_int_equal(plan_ceil_workers(0.2), 1);
    assert_near(plan_littles_law(-1, 0.02, 2), 0, 0);
    assert_near(plan_littles_law(100, 0.02, 0.5), 2, 1e-12); /* headroom < 1 reads as 1 */
}

static void error_budget_examples(void **state)
{
    (void)state;
    /* Reference text: 99.9% is "43 minutes/month"; 99.99% "4 minutes/month". */
    plan_budget b = plan_error_budget(0.999, 1000, 0.5);
    assert_near(b.fraction, 0.001, 1e-15);
    assert_near(b.minutes_per_month, 43.2, 1e-9);
    assert_near(b.bad_per_month, 1000 * 2592000.0 * 0.001, 1e-3);
    assert_near(b.drop_fraction_cap, 0.0005, 1e-15);
    assert_near(b.drops_per_second_cap, 0.5, 1e-12);
    plan_budget b4 = plan_error_budget(0.9999, 0, 1);
    assert_near(b4.minutes_per_month, 4.32, 1e-9);
    assert_near(b4.bad_per_month, 0, 0);
    plan_budget bad = plan_error_budget(1.0, 100, 1);
    assert_near(bad.fraction, 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(erlang_c_published_table),
        cmocka_unit_test(erlang_c_closed_forms_and_edges),
        cmocka_unit_test(mmc_wait_mm1),
        cmocka_unit_test(mmc_wait_c12),
        cmocka_unit_test(smallest_k_meets_slo),
        cmocka_unit_test(littles_law_examples),
        cmocka_unit_test(error_budget_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
