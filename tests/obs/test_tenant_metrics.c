/*
 * tests/obs/test_tenant_metrics.c - the pool_tenant_* families of a fair
 * pool (src/obs/pool_collector.c): each tenant's counters and wait
 * histogram under a tenant label, and the series cap: with 100,000
 * distinct tenant names submitted, a scrape holds at most max_series
 * tenant series per family, the busiest tenants keep theirs, the rest sum
 * into tenant="other", and every family still adds up to the pool's own
 * totals; across scrapes, with tenants promoted, demoted, forgotten and
 * seen again, "other" never goes down (test_other_stays_a_counter), also
 * while other threads mint and forget tenants during the scrapes
 * (test_other_under_churn: the collector reads the tenants through the
 * bounded top + select calls, never a copy of them all). A FIFO pool gets
 * no tenant families at all.
 *
 * The pools are drained (or waited on) before each scrape, so the counts
 * are exact. A tenant's counters count from when it was first seen until
 * it is forgotten (sluice/tenant.h); its counts then stay in "other", so
 * the families always add up to the pool's totals, but its own series
 * ends. The cardinality test turns forgetting off (idle_forget_ns =
 * UINT64_MAX) because a slow run (sanitizers, a loaded machine) could
 * pass the default 60 s between "large"'s last task and the scrape, and
 * it asserts large's own series. Which series are the busiest
 * depends on how the shard queues share the minted names; the core
 * spreads them evenly whether or not the workers keep up (the hand's
 * tie-break, tests/core/test_fair.c test_shard_ties_spread), which is
 * what lets "big" and "large" outrank every shard queue here.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/clock.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"
#include "sluice/tenant.h"

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

static int fail_task(void *arg)
{
    (void)arg;
    return 1;
}

static sluice_pool *fair_pool(const char *name, unsigned max_tenants)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 2;
    pc.queue_capacity = 256;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.max_tenants = max_tenants;
    pc.fair.idle_forget_ns = UINT64_MAX;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    return p;
}

static void submit_as(sluice_pool *p, const char *tenant, sluice_task_fn fn)
{
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = tenant;
    assert_int_equal(sluice_pool_submit_ex(p, fn, NULL, &o), SLUICE_OK);
}

static char *render(sluice_metrics *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    return text;
}

/* The value of the sample line that starts with `prefix` ("name{...} "),
 * or -1 when there is none. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0) {
            return strtod(line + n, NULL);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return -1;
}

/* How many sample lines start with `prefix`, and their sum. */
static size_t count_lines(const char *text, const char *prefix, double *sum)
{
    size_t n = strlen(prefix), count = 0;
    *sum = 0;
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0) {
            count++;
            const char *sp = strchr(line, ' ');
            *sum += sp ? strtod(sp + 1, NULL) : 0;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return count;
}

static void test_per_tenant_series(void **state)
{
    (void)state;
    sluice_pool *p = fair_pool("tx", 0);
    for (int i = 0; i < 5; i++) {
        submit_as(p, "acme", ok_task);
    }
    submit_as(p, "acme", fail_task);
    submit_as(p, "beta", ok_task);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE pool_tenant_completed_total counter\n"));
    assert_non_null(strstr(text, "# TYPE pool_tenant_submit_duration_seconds histogram\n"));
    assert_true(sample(text, "pool_tenant_submitted_total{name=\"tx\",tenant=\"acme\"} ") == 6);
    assert_true(sample(text, "pool_tenant_completed_total{name=\"tx\",tenant=\"acme\"} ") == 5);
    assert_true(sample(text, "pool_tenant_failed_total{name=\"tx\",tenant=\"acme\"} ") == 1);
    assert_true(sample(text, "pool_tenant_completed_total{name=\"tx\",tenant=\"beta\"} ") == 1);
    assert_true(sample(text, "pool_tenant_queued{name=\"tx\",tenant=\"beta\"} ") == 0);
    assert_true(sample(text, "pool_tenant_submit_duration_seconds_count{name=\"tx\",tenant=\"acme\"} ") == 6);
    assert_true(sample(text, "pool_tenants_folded{name=\"tx\"} ") == 0);
    assert_true(sample(text, "pool_tenants_tracked{name=\"tx\"} ") >= 2);
    assert_null(strstr(text, ",tenant=\"other\"}"));
    free(text);
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

/* 100,000 distinct names, an attacker's kind of traffic, plus two real
 * tenants with more traffic than any shard queue and one called "other". */
static void test_cardinality_cap(void **state)
{
    (void)state;
    enum { NAMES = 100000, CAP = 10 };
    sluice_pool *p = fair_pool("shared", 64);
    sluice_metrics_config mc = {.max_series = CAP};
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(&mc, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    /* Past 64 tracked names the rest share 64 shard queues (about 1,560
     * tasks each, well under 4,000, whether the workers keep up and every
     * submit sees empty queues or not), which are then among the busiest
     * series too. */
    for (int i = 0; i < 5000; i++) {
        submit_as(p, "big", ok_task);
    }
    for (int i = 0; i < 4000; i++) {
        submit_as(p, "large", ok_task);
    }
    for (int i = 0; i < 30; i++) {
        submit_as(p, "other", ok_task); /* a real tenant with the fold's name */
    }
    char name[32];
    for (int i = 0; i < NAMES; i++) {
        snprintf(name, sizeof name, "minted-%d", i);
        submit_as(p, name, ok_task);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    char *text = render(reg);
    static const char *const fams[] = {"pool_tenant_submitted_total{", "pool_tenant_completed_total{",
                                       "pool_tenant_queued{", "pool_tenant_submit_duration_seconds_count{"};
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        double sum;
        size_t lines = count_lines(text, fams[f], &sum);
        assert_true(lines >= 3);
        assert_true(lines <= CAP);
    }
    /* The busiest keep their own series; the fold is labelled "other" and
     * the real "other" went into it (one series with that label). */
    assert_true(sample(text, "pool_tenant_submitted_total{name=\"shared\",tenant=\"big\"} ") == 5000);
    assert_true(sample(text, "pool_tenant_submitted_total{name=\"shared\",tenant=\"large\"} ") == 4000);
    double sum;
    assert_int_equal(count_lines(text, "pool_tenant_submitted_total{name=\"shared\",tenant=\"other\"}", &sum),
                     1);
    assert_true(sample(text, "pool_tenants_folded{name=\"shared\"} ") > 0);
    /* Nothing is lost in the fold: the families add up to the pool. */
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    assert_int_equal(st.submitted, NAMES + 9030);
    count_lines(text, "pool_tenant_submitted_total{", &sum);
    assert_true(sum == (double)st.submitted);
    count_lines(text, "pool_tenant_completed_total{", &sum);
    assert_true(sum == (double)st.completed);
    count_lines(text, "pool_tenant_submit_duration_seconds_count{", &sum);
    assert_true(sum == (double)st.submitted);
    /* The scrape stays small: bounded by the cap, not by the names. */
    assert_true(strlen(text) < 64 * 1024);
    free(text);
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

/* The value of `family{name="<pool>",tenant="<tenant>"} `, or -1. */
static double tenant_sample(const char *text, const char *family, const char *pool, const char *tenant)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s{name=\"%s\",tenant=\"%s\"} ", family, pool, tenant);
    return sample(text, prefix);
}

static void submit_n(sluice_pool *p, const char *tenant, int n)
{
    for (int i = 0; i < n; i++) {
        submit_as(p, tenant, ok_task);
    }
}

/* Every tenant family adds up to the pool's totals, tenant="other" never
 * goes down from one scrape to the next, and neither does any series
 * that stays. Returns the scrape's "other" submitted (-1: none). */
typedef struct scrape_state {
    double other_submitted, other_completed, other_wait_count;
} scrape_state;

/* Every task of the pool ran, and every tenant has counted it: nothing
 * queued or running, submitted = the outcomes. A worker counts a task's
 * tenant outcome and wait at its next pop (the fair queue's deferred
 * finish), after the pool's own counters and its idle status, so the
 * pool can look done while a tenant still shows the task running. */
static bool tenants_settled(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    if (st.completed != st.submitted || st.running != 0) {
        return false;
    }
    enum { ROOM = 64 };
    sluice_tenant_stats *all = calloc(ROOM, sizeof *all);
    assert_non_null(all);
    size_t n = sluice_pool_tenants_get(p, all, ROOM);
    bool settled = n <= ROOM;
    for (size_t i = 0; settled && i < n; i++) {
        const sluice_tenant_stats *t = &all[i];
        settled =
            t->queued == 0 && t->running == 0 &&
            t->submitted == t->completed + t->failed + t->panicked + t->dropped + t->shed + t->abandoned &&
            t->wait.count == t->submitted;
    }
    free(all);
    return settled;
}

static double check_scrape(sluice_metrics *reg, sluice_pool *p, scrape_state *prev, char **text_out)
{
    WAIT_FOR(tenants_settled(p), "every task of the pool ran and every tenant counted it");
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    char *text = render(reg);
    double sum;
    count_lines(text, "pool_tenant_submitted_total{name=\"fold\",", &sum);
    assert_true(sum == (double)st.submitted);
    count_lines(text, "pool_tenant_completed_total{name=\"fold\",", &sum);
    assert_true(sum == (double)st.completed);
    count_lines(text, "pool_tenant_submit_duration_seconds_count{name=\"fold\",", &sum);
    assert_true(sum == (double)st.submitted);
    assert_true(count_lines(text, "pool_tenant_submitted_total{name=\"fold\",", &sum) <= 3); /* the cap */
    double o = tenant_sample(text, "pool_tenant_submitted_total", "fold", "other");
    double oc = tenant_sample(text, "pool_tenant_completed_total", "fold", "other");
    double ow = tenant_sample(text, "pool_tenant_submit_duration_seconds_count", "fold", "other");
    if (prev->other_submitted >= 0) {
        /* Once written, "other" goes on and never goes down (a decrease
         * would read as a counter reset). */
        assert_true(o >= prev->other_submitted);
        assert_true(oc >= prev->other_completed);
        assert_true(ow >= prev->other_wait_count);
    }
    prev->other_submitted = o;
    prev->other_completed = oc;
    prev->other_wait_count = ow;
    *text_out = text;
    return o;
}

static void test_other_stays_a_counter(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "fold";
    pc.workers = 2;
    pc.queue_capacity = 256;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.clock = &fc.clock;
    pc.fair.idle_forget_ns = SLUICE_NS_PER_SEC;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    sluice_metrics_config mc = {.max_series = 3};
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(&mc, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    scrape_state prev = {-1, -1, -1};
    char *text;

    /* default, a, b: three tenants, three series, nothing folded. */
    submit_n(p, "a", 10);
    submit_n(p, "b", 5);
    assert_true(check_scrape(reg, p, &prev, &text) < 0);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "a") == 10);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "b") == 5);
    free(text);

    /* c (40) and d (1) arrive: five tenants, two series and "other". c
     * has over twice b's traffic and takes b's series; default folds first
     * (no traffic). Nothing had been folded before, so c and a keep their
     * whole counts. */
    sluice_tenant *hold_c;
    assert_int_equal(sluice_pool_tenant_acquire(p, "c", &hold_c), SLUICE_OK); /* c is never forgotten */
    submit_n(p, "c", 40);
    submit_n(p, "d", 1);
    assert_true(check_scrape(reg, p, &prev, &text) == 5 + 1);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "c") == 40);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "a") == 10);
    assert_true(tenant_sample(text, "pool_tenants_folded", "fold", "") < 0);
    assert_true(sample(text, "pool_tenants_folded{name=\"fold\"} ") == 3);
    free(text);

    /* b grows past twice a's traffic: b takes a's series, counting from
     * now (its 5 stay in "other"), and a's 10 join "other". (Recomputed
     * from scratch each scrape, as before, "other" would lose b's 5 on
     * its promotion: a decrease whenever the tenant leaving the top has
     * less; and all of the forgotten tenants' counts below.) */
    submit_n(p, "b", 100);
    assert_true(check_scrape(reg, p, &prev, &text) == 105 + 10 + 1);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "b") == 0);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "a") < 0);
    free(text);
    submit_n(p, "b", 7);
    assert_true(check_scrape(reg, p, &prev, &text) == 105 + 10 + 1);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "b") == 7);
    free(text);

    /* Everyone idle but c is forgotten: a, b and d's counts move to the
     * pool's forgotten record, which "other" carries, so it still adds up
     * and does not go down; b's series ends. */
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    assert_true(check_scrape(reg, p, &prev, &text) == 10 + 112 + 1);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "b") < 0);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "c") == 40);
    free(text);

    /* b comes back: a new tenant under the old name (a new incarnation,
     * new since the last scrape, so nothing of it was ever folded), from
     * zero, with a series again: there is room. */
    submit_n(p, "b", 3);
    assert_true(check_scrape(reg, p, &prev, &text) == 123);
    assert_true(tenant_sample(text, "pool_tenant_submitted_total", "fold", "b") == 3);
    free(text);

    sluice_tenant_release(hold_c);
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

/* ---- churn while scraping ------------------------------------------------- */

typedef struct churner {
    sluice_pool *pool;
    sluice_fake_clock *fc;
    int id, rounds;
    _Atomic int *finished;
} churner;

/* Rounds of new names, a steady tenant with the most traffic, and the
 * clock moved past idle_forget now and then, so tenants are forgotten
 * (and kept series end) between and during the scrapes. */
static void *churn_main(void *arg)
{
    churner *c = arg;
    char name[48];
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = name;
    for (int r = 0; r < c->rounds; r++) {
        for (int k = 0; k < 6; k++) {
            snprintf(name, sizeof name, "m%d-%d-%d", c->id, r, k);
            while (sluice_pool_submit_ex(c->pool, ok_task, NULL, &o) == SLUICE_EFULL) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
        snprintf(name, sizeof name, "steady-%d", c->id);
        for (int k = 0; k < 3; k++) {
            while (sluice_pool_submit_ex(c->pool, ok_task, NULL, &o) == SLUICE_EFULL) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
        if (r % 5 == 4) {
            sluice_fake_clock_advance(c->fc, SLUICE_NS_PER_SEC);
        }
    }
    atomic_fetch_add(c->finished, 1);
    return NULL;
}

static void test_other_under_churn(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "fold";
    pc.workers = 2;
    pc.queue_capacity = 256;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.clock = &fc.clock;
    pc.fair.max_tenants = 48; /* and the rest sharded */
    pc.fair.shard_queues = 8;
    pc.fair.idle_forget_ns = SLUICE_NS_PER_SEC / 2;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    sluice_metrics_config mc = {.max_series = 3};
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(&mc, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    enum { THREADS = 2 };
    _Atomic int finished = 0;
    churner cs[THREADS];
    pthread_t th[THREADS];
    int rounds = 200;
#if SLUICE_TEST_TSAN
    rounds = 40;
#endif
    for (int i = 0; i < THREADS; i++) {
        cs[i] = (churner){.pool = p, .fc = &fc, .id = i, .rounds = rounds, .finished = &finished};
        assert_int_equal(pthread_create(&th[i], NULL, churn_main, &cs[i]), 0);
    }
    /* While it churns: "other" (once written) never goes down, and there
     * are at most 3 series a family. */
    double prev[3] = {-1, -1, -1};
    static const char *const fams[3] = {"pool_tenant_submitted_total", "pool_tenant_completed_total",
                                        "pool_tenant_submit_duration_seconds_count"};
    int scrapes = 0;
    for (bool last = false; !last; scrapes++) {
        last = atomic_load(&finished) == THREADS;
        char *text = render(reg);
        double sum;
        assert_true(count_lines(text, "pool_tenant_submitted_total{name=\"fold\",", &sum) <= 3);
        for (int f = 0; f < 3; f++) {
            double o = tenant_sample(text, fams[f], "fold", "other");
            if (prev[f] >= 0) {
                assert_true(o >= prev[f]);
            }
            prev[f] = o >= 0 ? o : prev[f];
        }
        free(text);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    /* Settled: the families add up to the pool's totals exactly, and
     * "other" still has not gone down. */
    scrape_state st = {prev[0], prev[1], prev[2]};
    char *text;
    check_scrape(reg, p, &st, &text);
    free(text);
    assert_true(scrapes >= 2);
    assert_true(st.other_submitted > 0);
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

static void test_fifo_pool_has_no_tenant_families(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "plain";
    pc.workers = 1;
    pc.queue_capacity = 4;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    char *text = render(reg);
    assert_null(strstr(text, "pool_tenant"));
    assert_non_null(strstr(text, "pool_completed_total{name=\"plain\"}"));
    free(text);
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_tenant_series),
        cmocka_unit_test(test_cardinality_cap),
        cmocka_unit_test(test_other_stays_a_counter),
        cmocka_unit_test(test_other_under_churn),
        cmocka_unit_test(test_fifo_pool_has_no_tenant_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
