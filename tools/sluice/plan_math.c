/*
 * tools/sluice/plan_math.c - Little's law, Erlang C and error budgets.
 *
 * Purpose: the numbers behind `sluice plan`. The reference text sizes K by
 * Little's law (K = rate x latency, plus headroom) and stops there; that K
 * keeps up with the mean load but says nothing about how long a task waits
 * for a worker, which is what a latency SLO is about. The Erlang C model
 * (M/M/c: Poisson arrivals, exponential service, c workers, an unbounded
 * FIFO queue) answers that in closed form, so the tool can print the
 * probability of waiting and the wait quantiles for the K it recommends,
 * and the smallest K whose wait quantile fits the SLO.
 *
 * Design: everything is a pure function of doubles. Erlang C is computed
 * from the Erlang B recursion, which multiplies and divides numbers in
 * [0, 1] only; the textbook form with a^c / c! overflows a double near
 * c = 170. The model's assumptions (exponential service) are optimistic
 * for heavy-tailed latencies and pessimistic for near-constant ones; the
 * tool says so where it prints the figures (docs/ops.md).
 *
 * Ordering and locking: none; no state.
 */
#include "plan_math.h"

#include <math.h>

double plan_littles_law(double rate, double mean_latency_s, double headroom)
{
    if (!(rate > 0) || !(mean_latency_s > 0))
        return 0;
    if (!(headroom >= 1))
        headroom = 1;
    return rate * mean_latency_s * headroom;
}

unsigned plan_ceil_workers(double k)
{
    if (!(k > 1))
        return 1;
    if (k >= 4294967295.0)
        return 4294967295u;
    /* 1e-9 relative slack: 0.1 * 2000 is 200.00000000000003 in binary. */
    double r = ceil(k * (1 - 1e-12) - 1e-9);
    return r < 1 ? 1u : (unsigned)r;
}

double plan_erlang_c(unsigned c, double a)
{
    if (!(a > 0))
        return 0;
    if (c == 0 || a >= (double)c)
        return 1;
    double b = 1;
    for (unsigned k = 1; k <= c; k++)
        b = a * b / ((double)k + a * b);
    double cc = (double)c * b / ((double)c - a * (1 - b));
    if (cc > 1)
        cc = 1;
    if (cc < 0)
        cc = 0;
    return cc;
}

static double quantile_from(double pw, double c, double a, double service_s, double q)
{
    double tail = 1 - q;
    if (pw <= tail)
        return 0;
    return service_s / (c - a) * log(pw / tail);
}

plan_wait plan_mmc_wait(unsigned c, double rate, double service_s)
{
    plan_wait w = {0};
    w.load = (rate > 0 && service_s > 0) ? rate * service_s : 0;
    w.utilization = c ? w.load / (double)c : INFINITY;
    w.stable = c > 0 && w.load < (double)c;
    if (!w.stable) {
        w.p_wait = 1;
        w.mean_wait = w.p99_wait = w.p999_wait = INFINITY;
        return w;
    }
    if (w.load == 0)
        return w;
    w.p_wait = plan_erlang_c(c, w.load);
    w.mean_wait = w.p_wait * service_s / ((double)c - w.load);
    w.p99_wait = quantile_from(w.p_wait, c, w.load, service_s, 0.99);
    w.p999_wait = quantile_from(w.p_wait, c, w.load, service_s, 0.999);
    return w;
}

double plan_wait_quantile(unsigned c, double rate, double service_s, double q)
{
    double a = (rate > 0 && service_s > 0) ? rate * service_s : 0;
    if (c == 0 || a >= (double)c)
        return INFINITY;
    if (a == 0)
        return 0;
    return quantile_from(plan_erlang_c(c, a), c, a, service_s, q);
}

bool plan_smallest_k(double rate, double service_s, double q, double wait_budget_s, unsigned k_max,
                     unsigned *out_k)
{
    if (!(wait_budget_s >= 0) || !(q > 0 && q < 1))
        return false;
    double a = (rate > 0 && service_s > 0) ? rate * service_s : 0;
    if (a == 0) {
        if (k_max < 1)
            return false;
        *out_k = 1;
        return true;
    }
    /* One pass of the Erlang B recursion: B(k) from B(k-1), so the walk
     * over K costs O(k_max) in all, not O(k_max^2). The wait quantile falls
     * as K grows, so the first K that fits is the answer. */
    double b = 1;
    for (unsigned k = 1; k <= k_max; k++) {
        b = a * b / ((double)k + a * b);
        if ((double)k <= a)
            continue; /* unstable: the wait is unbounded */
        double c = (double)k * b / ((double)k - a * (1 - b));
        if (quantile_from(c > 1 ? 1 : c, k, a, service_s, q) <= wait_budget_s) {
            *out_k = k;
            return true;
        }
        if (k == k_max)
            break;
    }
    return false;
}

plan_budget plan_error_budget(double target, double rate, double pool_share)
{
    plan_budget b = {0};
    if (!(target > 0 && target < 1))
        return b;
    if (!(pool_share > 0) || pool_share > 1)
        pool_share = 1;
    b.fraction = 1 - target;
    b.minutes_per_month = b.fraction * PLAN_MONTH_SECONDS / 60.0;
    b.bad_per_month = rate > 0 ? rate * PLAN_MONTH_SECONDS * b.fraction : 0;
    b.pool_share = pool_share;
    b.drop_fraction_cap = b.fraction * pool_share;
    b.drops_per_second_cap = rate > 0 ? rate * b.drop_fraction_cap : 0;
    return b;
}
