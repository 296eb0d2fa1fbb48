/*
 * tests/core/test_tenant_select.c - sluice_pool_tenants_top and
 * sluice_pool_tenants_select (sluice/tenant.h), the bounded scrape calls,
 * at their extremes: cap 0, 1 and past the tenants; n 0; a name given
 * twice, unknown, malformed, NULL, the forgotten record's, shard queue
 * names in and out of range; every error; a FIFO pool; tenants at
 * max_tenants with the rest sharded; forgotten tenants' counts in rest and
 * in the forgotten record; and, under TSan, tenants minted and forgotten
 * by other threads while a scraper loops: the found tenants plus rest are
 * the pool's per-tenant totals at every call (so they never go down), and
 * exactly the pool's totals once it settles.
 *
 * Quiescence is awaited (WAIT_FOR on the state asserted), never slept for.
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

static int gate_task(void *arg)
{
    return gate_pass(arg, true) ? 0 : 1;
}

static sluice_pool *fair_pool(unsigned workers, unsigned max_tenants, sluice_clock *clock, uint64_t forget_ns)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "sel";
    pc.workers = workers;
    pc.queue_capacity = 1024;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.max_tenants = max_tenants;
    pc.fair.shard_queues = 8;
    pc.fair.hand_size = 2;
    pc.fair.idle_forget_ns = forget_ns;
    pc.clock = clock;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
}

static void submit_as(sluice_pool *p, const char *tenant, sluice_task_fn fn, void *arg)
{
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = tenant;
    assert_int_equal(sluice_pool_submit_ex(p, fn, arg, &o), SLUICE_OK);
}

static void submit_n(sluice_pool *p, const char *tenant, int n)
{
    for (int i = 0; i < n; i++) {
        submit_as(p, tenant, ok_task, NULL);
    }
}

/* Every task ran and every tenant counted it (the fair queue counts a
 * task's outcome at its worker's next pop): read from the per-tenant
 * totals (select with n = 0) and the pool's. */
static bool settled(sluice_pool *p)
{
    sluice_tenant_selection sel;
    if (sluice_pool_tenants_select(p, NULL, 0, NULL, &sel) != SLUICE_OK) {
        return false;
    }
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    const sluice_tenant_stats *r = &sel.rest;
    return r->queued == 0 && r->running == 0 && st.running == 0 && r->submitted == st.submitted &&
           r->submitted == r->completed + r->failed + r->panicked + r->dropped + r->shed + r->abandoned;
}

/* The counters a test compares, as one vector. */
typedef struct counts {
    uint64_t submitted, started, completed, failed, rejected, wait_count, wait_bucket_sum;
    size_t queued;
    unsigned running;
} counts;

static void add(counts *c, const sluice_tenant_stats *t)
{
    c->submitted += t->submitted;
    c->started += t->started;
    c->completed += t->completed;
    c->failed += t->failed;
    c->rejected += t->rejected;
    c->wait_count += t->wait.count;
    for (size_t b = 0; b <= t->wait.bucket_count; b++) {
        c->wait_bucket_sum += t->wait.counts[b];
    }
    c->queued += t->queued;
    c->running += t->running;
}

static void assert_counts_equal(const counts *a, const counts *b)
{
    assert_int_equal(a->submitted, b->submitted);
    assert_int_equal(a->started, b->started);
    assert_int_equal(a->completed, b->completed);
    assert_int_equal(a->failed, b->failed);
    assert_int_equal(a->rejected, b->rejected);
    assert_int_equal(a->wait_count, b->wait_count);
    assert_int_equal(a->wait_bucket_sum, b->wait_bucket_sum);
    assert_int_equal(a->queued, b->queued);
    assert_int_equal(a->running, b->running);
}

/* The old call's view: every listed tenant plus the forgotten record. */
static counts all_by_snapshot(sluice_pool *p, size_t *listed)
{
    size_t n = sluice_pool_tenants_snapshot(p, NULL, 0, NULL);
    sluice_tenant_stats *all = calloc(n + 64, sizeof *all);
    assert_non_null(all);
    sluice_tenant_stats fg;
    size_t got = sluice_pool_tenants_snapshot(p, all, n + 64, &fg);
    assert_true(got <= n + 64);
    counts c = {0};
    for (size_t i = 0; i < got; i++) {
        add(&c, &all[i]);
    }
    add(&c, &fg);
    free(all);
    *listed = got;
    return c;
}

static void test_top_extremes(void **state)
{
    (void)state;
    sluice_pool *p = fair_pool(1, 0, NULL, UINT64_MAX);
    submit_n(p, "a", 3);
    submit_n(p, "b", 2);
    submit_n(p, "c", 1);
    WAIT_FOR(settled(p), "the 6 tasks ran and were counted");
    sluice_tenant_rank r[8];
    size_t found = 99;
    /* cap 0: nothing ranked, nothing written. */
    memset(r, 0x5a, sizeof r);
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, NULL, 0, &found), SLUICE_OK);
    assert_int_equal(found, 0);
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 0, &found), SLUICE_OK);
    assert_int_equal(found, 0);
    assert_int_equal((unsigned char)r[0].name[0], 0x5a);
    /* cap 1: the busiest. */
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 1, &found), SLUICE_OK);
    assert_int_equal(found, 1);
    assert_string_equal(r[0].name, "a");
    assert_int_equal(r[0].key, 3);
    assert_true(r[0].incarnation >= 1);
    /* cap past the tenants: all of them, as tenants_get lists them, best
     * first, ties by name ("default" has no traffic). */
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 8, &found), SLUICE_OK);
    assert_int_equal(found, 4);
    assert_int_equal(found, sluice_pool_tenants_get(p, NULL, 0));
    static const char *const order[] = {"a", "b", "c", "default"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(r[i].name, order[i]);
    }
    assert_int_equal(r[3].key, 0);
    /* SIZE_MAX is "all of them" too (the array only needs room for them). */
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, SIZE_MAX, &found), SLUICE_OK);
    assert_int_equal(found, 4);

    /* By load: hold the worker on a gate task of "g", queue 2 of "x" and
     * 1 of "y" behind it. */
    gate *g = gate_new();
    submit_as(p, "g", gate_task, g);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task runs");
    submit_n(p, "x", 2);
    submit_n(p, "y", 1);
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_LOAD, r, 3, &found), SLUICE_OK);
    assert_int_equal(found, 3);
    assert_string_equal(r[0].name, "x");
    assert_int_equal(r[0].key, 2);
    assert_string_equal(r[1].name, "g"); /* 1 running; "g" < "y" */
    assert_string_equal(r[2].name, "y");
    gate_open(g);
    WAIT_FOR(settled(p), "the gate task and the 3 behind it ran");
    gate_free(g);

    /* Errors: *found is 0 on each. */
    found = 7;
    assert_int_equal(sluice_pool_tenants_top(NULL, SLUICE_TENANT_BY_TRAFFIC, r, 8, &found), SLUICE_EINVAL);
    assert_int_equal(found, 0);
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 8, NULL), SLUICE_EINVAL);
    found = 7;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, NULL, 1, &found), SLUICE_EINVAL);
    assert_int_equal(found, 0);
    found = 7;
    assert_int_equal(sluice_pool_tenants_top(p, (sluice_tenant_order)7, r, 8, &found), SLUICE_EINVAL);
    assert_int_equal(found, 0);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);

    /* A FIFO pool has no tenants. */
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "fifo";
    pc.workers = 1;
    pc.queue_capacity = 4;
    sluice_pool *fifo = NULL;
    assert_int_equal(sluice_pool_create(&pc, &fifo, NULL, 0), SLUICE_OK);
    found = 7;
    assert_int_equal(sluice_pool_tenants_top(fifo, SLUICE_TENANT_BY_TRAFFIC, r, 8, &found), SLUICE_ENOTSUP);
    assert_int_equal(found, 0);
    sluice_tenant_selection sel;
    const char *one[] = {"a"};
    sluice_tenant_stats out[1];
    assert_int_equal(sluice_pool_tenants_select(fifo, one, 1, out, &sel), SLUICE_ENOTSUP);
    assert_int_equal(out[0].incarnation, 0);
    assert_string_equal(out[0].name, "a");
    assert_string_equal(sel.rest.name, SLUICE_TENANT_REST);
    assert_int_equal(sel.rest.submitted, 0);
    assert_int_equal(sel.tenants, 0);
    sluice_pool_destroy(fifo);
}

static void test_select_extremes(void **state)
{
    (void)state;
    sluice_pool *p = fair_pool(2, 0, NULL, UINT64_MAX);
    submit_n(p, "a", 4);
    submit_as(p, "a", fail_task, NULL);
    submit_n(p, "b", 2);
    WAIT_FOR(settled(p), "the 7 tasks ran and were counted");
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);

    /* n = 0: rest is every tenant, as the old call sums them. */
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    size_t listed = 0;
    counts old = all_by_snapshot(p, &listed), rest = {0};
    add(&rest, &sel.rest);
    assert_counts_equal(&rest, &old);
    assert_int_equal(sel.rest.submitted, st.submitted);
    assert_int_equal(sel.rest.failed, 1);
    assert_int_equal(sel.tenants, listed);
    assert_int_equal(sel.found, 0);
    assert_string_equal(sel.rest.name, SLUICE_TENANT_REST);
    assert_int_equal(sel.rest.incarnation, 0);
    assert_int_equal(sel.rest.config.weight, 0);
    assert_string_equal(sel.forgotten.name, SLUICE_TENANT_FORGOTTEN);
    assert_int_equal(sel.forgotten.submitted, 0);

    /* A name twice, unknown names, malformed ones, NULL, the forgotten
     * record's name, a shard queue that saw no task and one out of range:
     * "a" is filled twice and counted once; the rest are absent. */
    char too_long[SLUICE_TENANT_NAME_MAX + 2];
    memset(too_long, 'z', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *names[] = {"a",
                           "a",
                           "nope",
                           NULL,
                           SLUICE_TENANT_FORGOTTEN,
                           "bad name",
                           "~shard-0",
                           "~shard-99999",
                           too_long,
                           "~shard-01",
                           "~shard-",
                           "~shard-1x",
                           ""};
    enum { N = sizeof names / sizeof names[0] };
    sluice_tenant_stats out[N];
    assert_int_equal(sluice_pool_tenants_select(p, names, N, out, &sel), SLUICE_OK);
    assert_int_equal(sel.found, 1);
    assert_string_equal(out[0].name, "a");
    assert_int_equal(out[0].submitted, 5);
    assert_int_equal(out[1].submitted, 5);
    assert_int_equal(out[0].incarnation, out[1].incarnation);
    assert_true(out[0].incarnation >= 1 && out[0].incarnation <= sel.last_incarnation);
    for (size_t i = 2; i < N; i++) {
        assert_int_equal(out[i].incarnation, 0);
        assert_int_equal(out[i].submitted, 0);
    }
    assert_string_equal(out[2].name, "nope");
    assert_string_equal(out[3].name, "");
    assert_string_equal(out[8].name, ""); /* too long to copy */
    counts sum = {0};
    add(&sum, &out[0]);
    add(&sum, &sel.rest);
    assert_counts_equal(&sum, &old);
    assert_int_equal(sel.rest.submitted, 2); /* b's */
    assert_int_equal(sel.tenants, listed);

    /* Every listed tenant named: rest is zero (nothing forgotten). */
    sluice_tenant_rank r[16];
    size_t nr = 0;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 16, &nr), SLUICE_OK);
    const char *every[16];
    for (size_t i = 0; i < nr; i++) {
        every[i] = r[i].name;
    }
    sluice_tenant_stats each[16];
    assert_int_equal(sluice_pool_tenants_select(p, every, nr, each, &sel), SLUICE_OK);
    assert_int_equal(sel.found, nr);
    assert_int_equal(sel.found, sel.tenants);
    assert_int_equal(sel.rest.submitted, 0);
    assert_int_equal(sel.rest.wait.count, 0);
    counts found = {0};
    for (size_t i = 0; i < nr; i++) {
        assert_int_equal(each[i].incarnation, r[i].incarnation);
        add(&found, &each[i]);
    }
    assert_counts_equal(&found, &old);

    /* Errors: out entries absent, sel zeros with its names. */
    assert_int_equal(sluice_pool_tenants_select(NULL, names, 1, out, &sel), SLUICE_EINVAL);
    assert_int_equal(out[0].incarnation, 0);
    assert_string_equal(sel.rest.name, SLUICE_TENANT_REST);
    assert_int_equal(sel.rest.submitted, 0);
    assert_int_equal(sluice_pool_tenants_select(p, names, 1, out, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 1, out, &sel), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenants_select(p, names, 1, NULL, &sel), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

/* max_tenants 4: past it the names share 8 shard queues ("~shard-N"),
 * which top lists and select finds by name. */
static void test_at_max_tenants(void **state)
{
    (void)state;
    sluice_pool *p = fair_pool(2, 4, NULL, UINT64_MAX);
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "n%02d", i);
        submit_n(p, name, 1 + i % 3);
    }
    WAIT_FOR(settled(p), "every task ran and was counted");
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 5); /* 4 + default */
    size_t listed = 0;
    counts old = all_by_snapshot(p, &listed);
    assert_true(listed > 5); /* shard queues listed too */
    sluice_tenant_rank r[64];
    size_t nr = 0;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 64, &nr), SLUICE_OK);
    assert_int_equal(nr, listed);
    size_t shards = 0;
    const char *names[64];
    for (size_t i = 0; i < nr; i++) {
        shards += strncmp(r[i].name, "~shard-", 7) == 0;
        names[i] = r[i].name;
        assert_true(i == 0 || r[i - 1].key >= r[i].key);
    }
    assert_int_equal(shards, listed - 5);
    /* cap 1 at the extreme: the busiest, a shard queue (it sums names). */
    size_t one = 0;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r + 32, 1, &one), SLUICE_OK);
    assert_int_equal(one, 1);
    assert_string_equal(r[32].name, r[0].name);
    /* Half of them by name, the rest summed: exact. */
    sluice_tenant_stats out[64];
    sluice_tenant_selection sel;
    size_t half = nr / 2;
    assert_int_equal(sluice_pool_tenants_select(p, names, half, out, &sel), SLUICE_OK);
    assert_int_equal(sel.found, half);
    assert_int_equal(sel.tenants, listed);
    counts sum = {0};
    for (size_t i = 0; i < half; i++) {
        assert_true(out[i].incarnation != 0);
        assert_int_equal(out[i].shard, strncmp(names[i], "~shard-", 7) == 0);
        add(&sum, &out[i]);
    }
    add(&sum, &sel.rest);
    assert_counts_equal(&sum, &old);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

/* Forgotten tenants: top forgets them (in pieces), select no longer finds
 * them, and their counts stay in rest and in the forgotten record. */
static void test_forgotten_stay_in_rest(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool *p = fair_pool(2, 0, &fc.clock, SLUICE_NS_PER_SEC);
    char name[32];
    enum { MANY = 700 }; /* more than one forgetting piece (256) */
    for (int i = 0; i < MANY; i++) {
        snprintf(name, sizeof name, "f%03d", i);
        submit_n(p, name, 1);
    }
    submit_n(p, "stay", 3);
    sluice_tenant *hold = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, "stay", &hold), SLUICE_OK);
    WAIT_FOR(settled(p), "every task ran and was counted");
    sluice_tenant_selection before;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &before), SLUICE_OK);
    assert_int_equal(before.tenants, MANY + 2);
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    /* A new name forgets some of those due (a piece, not all 700: the
     * submit is not made to free them all), and its task ran. */
    submit_n(p, "newcomer", 1);
    WAIT_FOR(settled(p), "newcomer's task ran");
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_true(ts.forgotten >= 1 && ts.forgotten < MANY);
    sluice_tenant_rank r[4];
    size_t nr = 0;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, 4, &nr), SLUICE_OK);
    assert_int_equal(nr, 3); /* stay, newcomer and default: top forgot the rest */
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.forgotten, MANY);
    assert_string_equal(r[0].name, "stay");
    const char *names[] = {"stay", "f000"};
    sluice_tenant_stats out[2];
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, names, 2, out, &sel), SLUICE_OK);
    assert_int_equal(sel.tenants, 3);
    assert_int_equal(sel.found, 1);
    assert_int_equal(out[0].submitted, 3);
    assert_int_equal(out[1].incarnation, 0);
    assert_int_equal(sel.forgotten.submitted, MANY);
    assert_int_equal(sel.forgotten.completed, MANY);
    assert_int_equal(sel.rest.submitted, MANY + 1); /* + newcomer's; default has none */
    assert_int_equal(sel.rest.submitted + out[0].submitted, before.rest.submitted + 1);
    assert_int_equal(sel.rest.wait.count + out[0].wait.count, before.rest.wait.count + 1);
    /* f000 seen again: a new incarnation, newer than the last select. */
    submit_n(p, "f000", 1);
    WAIT_FOR(settled(p), "f000's task ran");
    uint64_t last = sel.last_incarnation;
    assert_int_equal(sluice_pool_tenants_select(p, names, 2, out, &sel), SLUICE_OK);
    assert_true(out[1].incarnation > last);
    assert_int_equal(out[1].submitted, 1);
    assert_int_equal(sel.forgotten.submitted, MANY);
    sluice_tenant_release(hold);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

/* ---- churn: minting and forgetting while a scraper loops ------------------- */

typedef struct churn {
    sluice_pool *pool;
    sluice_fake_clock *fc;
    int id;
    int rounds;
    _Atomic int *finished;
    _Atomic size_t *scraped; /* the scraper's rounds so far: the churn starts after the first */
} churn;

/* Each round: a few new names and one steady one, then the clock moves
 * on past idle_forget so the idle ones are forgotten at the next sweep. */
static void *churn_main(void *arg)
{
    churn *c = arg;
    char name[48];
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = name;
    /* Start once the scraper has scraped once, so it overlaps the churn
     * however the threads are scheduled (on a loaded box the churn could
     * end before the first scrape, and the test saw one scrape in all). */
    while (atomic_load(c->scraped) == 0) {
        poll_pause();
    }
    for (int r = 0; r < c->rounds; r++) {
        for (int k = 0; k < 8; k++) {
            snprintf(name, sizeof name, "c%d-r%d-k%d", c->id, r, k);
            while (sluice_pool_submit_ex(c->pool, r % 5 == 0 ? fail_task : ok_task, NULL, &o) ==
                   SLUICE_EFULL) {
                poll_pause();
            }
        }
        snprintf(name, sizeof name, "steady-%d", c->id);
        while (sluice_pool_submit_ex(c->pool, ok_task, NULL, &o) == SLUICE_EFULL) {
            poll_pause();
        }
        if (r % 4 == 3) {
            sluice_fake_clock_advance(c->fc, SLUICE_NS_PER_SEC);
        }
    }
    atomic_fetch_add(c->finished, 1);
    return NULL;
}

static void test_concurrent_churn(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    /* max_tenants 64: the names overflow into shard queues as well. */
    sluice_pool *p = fair_pool(2, 64, &fc.clock, SLUICE_NS_PER_SEC / 2);
    enum { THREADS = 3 };
    int rounds = (SLUICE_TEST_TSAN || under_sanitizer() ? 60 : 300) * (int)stress_scale();
    _Atomic int finished = 0;
    _Atomic size_t scraped = 0;
    churn cs[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cs[i] = (churn){
            .pool = p, .fc = &fc, .id = i, .rounds = rounds, .finished = &finished, .scraped = &scraped};
        assert_int_equal(pthread_create(&th[i], NULL, churn_main, &cs[i]), 0);
    }
    /* The scraper: the per-tenant totals (found + rest) and the forgotten
     * record never go down; the found are distinct and listed. */
    counts prev = {0};
    uint64_t prev_forgotten = 0;
    size_t scrapes = 0;
    sluice_tenant_rank r[8];
    sluice_tenant_stats out[9];
    const char *names[9];
    for (bool last = false; !last; scrapes++) {
        last = atomic_load(&finished) == THREADS; /* one more scrape after the churn ends */
        size_t cap = scrapes % 9;                 /* 0..8 */
        size_t nr = 0;
        assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, r, cap, &nr), SLUICE_OK);
        assert_true(nr <= cap);
        for (size_t i = 0; i < nr; i++) {
            names[i] = r[i].name;
        }
        names[nr] = "steady-0"; /* may be twice */
        sluice_tenant_selection sel;
        assert_int_equal(sluice_pool_tenants_select(p, names, nr + 1, out, &sel), SLUICE_OK);
        assert_true(sel.found <= sel.tenants);
        counts now = {0};
        add(&now, &sel.rest);
        bool seen_steady = false;
        for (size_t i = 0; i < nr + 1; i++) {
            bool dup = i == nr && seen_steady;
            if (out[i].incarnation != 0 && !dup) {
                add(&now, &out[i]);
                assert_true(out[i].incarnation <= sel.last_incarnation);
            }
            seen_steady |= i < nr && strcmp(names[i], "steady-0") == 0 && out[i].incarnation != 0;
        }
        assert_true(now.submitted >= prev.submitted);
        assert_true(now.completed >= prev.completed);
        assert_true(now.failed >= prev.failed);
        assert_true(now.wait_count >= prev.wait_count);
        assert_true(sel.forgotten.submitted >= prev_forgotten);
        prev = now;
        prev_forgotten = sel.forgotten.submitted;
        atomic_fetch_add(&scraped, 1);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    WAIT_FOR(settled(p), "every churned task ran and was counted");
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    assert_int_equal(sel.rest.submitted, st.submitted);
    assert_int_equal(sel.rest.completed, st.completed);
    assert_int_equal(sel.rest.failed, st.failed);
    assert_int_equal(sel.rest.wait.count, st.submitted);
    size_t listed = 0;
    counts old = all_by_snapshot(p, &listed), rest = {0};
    add(&rest, &sel.rest);
    assert_counts_equal(&rest, &old);
    assert_true(sel.forgotten.submitted > 0); /* the churn did forget */
    assert_true(scrapes > 1);                 /* one before the churn started, one after it ended */
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_extremes),     cmocka_unit_test(test_select_extremes),
        cmocka_unit_test(test_at_max_tenants),   cmocka_unit_test(test_forgotten_stay_in_rest),
        cmocka_unit_test(test_concurrent_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
