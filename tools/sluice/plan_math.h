/*
 * tools/sluice/plan_math.h - capacity-planning arithmetic for `sluice plan`
 * and `sluice lint`: Little's law, the Erlang C (M/M/c) queue, and
 * error-budget sums.
 *
 * Pure functions of their arguments: no allocation, no I/O, no globals, so
 * every call is thread-safe and the unit tests can check each number
 * against values computed independently (closed forms, exact rational
 * arithmetic, published Erlang C tables).
 *
 * Units: rates in events per second, times in seconds (double). Counts of
 * workers are unsigned. The tool converts from and to the config's
 * nanosecond durations at its edges.
 */
#ifndef SLUICE_TOOLS_PLAN_MATH_H
#define SLUICE_TOOLS_PLAN_MATH_H

#include <stdbool.h>

/* Seconds in the planning month (30 days), the unit of "budget per month". */
#define PLAN_MONTH_SECONDS (30.0 * 24.0 * 3600.0)

/*
 * plan_littles_law - the mean number of tasks in service, L = rate * mean
 * latency (Little's law), times `headroom` (>= 1; 2 = plan for twice the
 * rate). This is the K that keeps up with the load on average; it says
 * nothing about queueing, which plan_erlang_c does.
 * Returns: L (not rounded); 0 for non-positive inputs.
 */
double plan_littles_law(double rate, double mean_latency_s, double headroom);

/*
 * plan_ceil_workers - round a real worker count up to an integer K >= 1,
 * tolerant of floating error (200.0000000001 -> 200).
 */
unsigned plan_ceil_workers(double k);

/*
 * plan_erlang_c - the probability that an arriving task waits in an M/M/c
 * queue with c servers and offered load a = rate * mean service time
 * (Erlangs). Computed through the Erlang B recursion
 *     B(0) = 1,  B(k) = a B(k-1) / (k + a B(k-1)),
 *     C = c B(c) / (c - a (1 - B(c)))
 * which never forms a^c or c! and is stable for c in the tens of thousands.
 * Returns: C in [0, 1]; 1 when the queue is unstable (a >= c) or c == 0;
 * 0 when a <= 0.
 */
double plan_erlang_c(unsigned c, double a);

/* The queue-wait picture of one pod's pool as an M/M/c queue. */
typedef struct plan_wait {
    bool stable;        /* a < c: the queue does not grow without bound */
    double load;        /* a = rate * mean service time (Erlangs) */
    double utilization; /* a / c */
    double p_wait;      /* Erlang C: P(wait > 0) */
    double mean_wait;   /* E[W] = C * S / (c - a), seconds */
    double p99_wait;    /* seconds; 0 when P(wait > 0) <= 1% */
    double p999_wait;   /* seconds; 0 when P(wait > 0) <= 0.1% */
} plan_wait;

/*
 * plan_mmc_wait - the wait distribution for c workers, arrival `rate` (per
 * second) and mean service time `service_s`. In M/M/c the wait, given that
 * a task waits, is exponential with rate (c - a)/S, so
 *     P(W > t) = C exp(-(c - a) t / S).
 * When unstable, every field but load/utilization is +infinity (p_wait 1).
 * Returns: the filled struct (by value).
 */
plan_wait plan_mmc_wait(unsigned c, double rate, double service_s);

/*
 * plan_wait_quantile - the q-quantile (0 < q < 1) of the wait for c
 * workers: the smallest t with P(W > t) <= 1 - q:
 *     t = S / (c - a) * ln(C / (1 - q))   when C > 1 - q, else 0.
 * Returns: seconds; +infinity when unstable.
 */
double plan_wait_quantile(unsigned c, double rate, double service_s, double q);

/*
 * plan_smallest_k - the smallest K (>= 1, <= k_max) whose q-quantile wait
 * is <= wait_budget_s. The quantile falls as K grows, so the first K that
 * meets the budget is the answer; one pass of the Erlang B recursion finds
 * it in O(k_max) (no load: K = 1).
 * Returns: true and *out_k; false when no K <= k_max meets it (or the
 * budget is negative).
 */
bool plan_smallest_k(double rate, double service_s, double q, double wait_budget_s, unsigned k_max,
                     unsigned *out_k);

/* Error-budget arithmetic for an SLO "target of requests succeed / are fast". */
typedef struct plan_budget {
    double fraction;             /* 1 - target */
    double minutes_per_month;    /* fraction * 30 days, in minutes */
    double bad_per_month;        /* rate * 30 days * fraction: requests allowed to miss */
    double pool_share;           /* the share of the budget given to this pool's drops */
    double drop_fraction_cap;    /* fraction * pool_share */
    double drops_per_second_cap; /* rate * drop_fraction_cap */
} plan_budget;

/*
 * plan_error_budget - budget for SLO `target` (0 < target < 1) at `rate`
 * requests/s, of which `pool_share` (0..1] may be spent on the pool's drops.
 * Returns: the filled struct.
 */
plan_budget plan_error_budget(double target, double rate, double pool_share);

#endif /* SLUICE_TOOLS_PLAN_MATH_H */
