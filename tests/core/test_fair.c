/*
 * tests/core/test_fair.c - the FAIR queue discipline and the tenant API
 * (sluice/tenant.h, issue 13): weights, starvation freedom, quotas,
 * running limits, unknown tenants, shuffle-shard isolation, forgetting,
 * DROP_OLDEST's victim, shedding, drain and destroy per tenant, and the
 * accounting identity per tenant.
 *
 * Order tests use one worker held at a gate while the queue is filled:
 * once the gate opens the worker starts the queued tasks one at a time,
 * so the order it starts them in is the queue's decision alone, with no
 * timing in it. Time-dependent rules (deadlines, forgetting) run on a
 * fake clock.
 */
#include <inttypes.h>

#include "common/pool.h"
#include "sluice/tenant.h"

/* ---- recording the order tasks start in ----------------------------------- */

#define ORDER_MAX 40000

typedef struct order {
    _Atomic size_t n;
    int who[ORDER_MAX];
} order;

typedef struct rec_arg {
    order *o;
    int who;
} rec_arg;

static int task_record(void *arg)
{
    rec_arg *r = arg;
    size_t i = atomic_fetch_add(&r->o->n, 1);
    if (i < ORDER_MAX) {
        r->o->who[i] = r->who;
    }
    return 0;
}

static void fair_config(sluice_pool_config *cfg, const char *name, unsigned k, size_t cap, tally *t)
{
    base_config(cfg, name, k, cap, t);
    cfg->queue_discipline = SLUICE_QUEUE_FAIR;
}

static sluice_err submit_as(sluice_pool *p, const char *tenant, sluice_task_fn fn, void *arg)
{
    sluice_submit_opts o = {.tenant_name = tenant};
    return sluice_pool_submit_ex(p, fn, arg, &o);
}

static sluice_err submit_h(sluice_pool *p, sluice_tenant *h, sluice_task_fn fn, void *arg)
{
    sluice_submit_opts o = {.tenant = h};
    return sluice_pool_submit_ex(p, fn, arg, &o);
}

/* Holds the pool's only worker at a gate; returns when it is there. */
static void hold_worker(sluice_pool *p, gate *g)
{
    assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the worker at the gate");
}

static bool tenant_find(sluice_pool *p, const char *name, sluice_tenant_stats *out)
{
    size_t n = sluice_pool_tenants_get(p, NULL, 0);
    sluice_tenant_stats *all = calloc(n ? n : 1, sizeof *all);
    n = sluice_pool_tenants_get(p, all, n);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].name, name) == 0) {
            *out = all[i];
            found = true;
        }
    }
    free(all);
    return found;
}

static uint64_t tenant_ended(const sluice_tenant_stats *s)
{
    return s->completed + s->failed + s->panicked + s->dropped + s->shed + s->abandoned;
}

/* Every tenant's identity, and the sum over tenants (and the forgotten
 * record) against the pool's. */
static bool tenant_identities_hold(sluice_pool *p)
{
    sluice_pool_stats ps;
    if (!identity_holds(p, &ps)) {
        return false;
    }
    sluice_tenant_stats *all = NULL;
    size_t n = 0;
    for (size_t room = 16;; room *= 2) {
        free(all);
        all = calloc(room + 1, sizeof *all);
        /* The forgotten record goes last, as one more entry to add up. */
        n = sluice_pool_tenants_snapshot(p, all, room, &all[room]);
        if (n <= room) {
            all[n] = all[room];
            n++;
            break;
        }
    }
    uint64_t sub = 0, rej = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (all[i].queued || all[i].running || all[i].submitted != tenant_ended(&all[i])) {
            print_message("tenant %s: submitted %llu ended %llu queued %zu running %u\n", all[i].name,
                          (unsigned long long)all[i].submitted, (unsigned long long)tenant_ended(&all[i]),
                          all[i].queued, all[i].running);
            ok = false;
        }
        sub += all[i].submitted;
        rej += all[i].rejected;
    }
    free(all);
    /* Forgotten tenants' counts are in the forgotten record: it adds up. */
    if (sub != ps.submitted || rej != ps.rejected) {
        print_message("sum over tenants: submitted %llu rejected %llu; pool %llu %llu\n",
                      (unsigned long long)sub, (unsigned long long)rej, (unsigned long long)ps.submitted,
                      (unsigned long long)ps.rejected);
        ok = false;
    }
    return ok;
}

#define ASSERT_TENANT_IDENTITIES(p)                                                                          \
    do {                                                                                                     \
        uint64_t lim_ = real_now_ns() + SAFETY_NS;                                                           \
        while (!tenant_identities_hold(p)) {                                                                 \
            if (real_now_ns() > lim_) {                                                                      \
                fail_msg("per-tenant accounting does not hold at %s:%d", __FILE__, __LINE__);                \
            }                                                                                                \
            poll_pause();                                                                                    \
        }                                                                                                    \
    } while (0)

/* ---- tests ------------------------------------------------------------------------ */

/* Weights 1:2:4, all three backlogged: of the first 10,000 starts each
 * tenant's share is within 5% of w / 7 (DRR makes it exact to a round). */
static void test_weights_1_2_4(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    order *o = calloc(1, sizeof *o);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-w", 1, 3 * 10000 + 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const char *names[3] = {"w1", "w2", "w4"};
    unsigned weights[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        sluice_tenant_config tc = {.weight = weights[i]};
        assert_int_equal(sluice_pool_tenant_set(p, names[i], &tc, NULL, 0), SLUICE_OK);
    }
    hold_worker(p, g);
    rec_arg args[3];
    sluice_tenant *h[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (rec_arg){.o = o, .who = i};
        assert_int_equal(sluice_pool_tenant_acquire(p, names[i], &h[i]), SLUICE_OK);
    }
    /* Interleaved submits, tenant by tenant in turn, 10,000 each. */
    for (int n = 0; n < 10000; n++) {
        for (int i = 0; i < 3; i++) {
            assert_int_equal(submit_h(p, h[i], task_record, &args[i]), SLUICE_OK);
        }
    }
    gate_open(g);
    WAIT_FOR(atomic_load(&o->n) == 30000, "all tasks ran");
    /* A task's tenant outcome and wait are counted by its worker's next pop
     * (deferred finish), after the task itself returned: wait for every
     * tenant to add up before reading completed and wait.count. */
    ASSERT_TENANT_IDENTITIES(p);
    size_t count[3] = {0};
    for (size_t i = 0; i < 10000; i++) {
        count[o->who[i]]++;
    }
    for (int i = 0; i < 3; i++) {
        double want = 10000.0 * weights[i] / 7.0;
        print_message("weight %u: %zu of the first 10000 starts (want %.0f)\n", weights[i], count[i], want);
        assert_true(count[i] >= want * 0.95 && count[i] <= want * 1.05);
        sluice_tenant_stats s;
        assert_int_equal(sluice_tenant_stats_get(h[i], &s), SLUICE_OK);
        assert_int_equal(s.started, 10000);
        assert_int_equal(s.completed, 10000);
        assert_int_equal(s.config.weight, weights[i]);
        assert_int_equal(s.wait.count, 10000);
        sluice_tenant_release(h[i]);
    }
    sluice_pool_destroy(p);
    free(o);
    gate_free(g);
    tally_free(t);
}

/* A flood queued first does not starve a tenant that arrives after it:
 * the newcomer starts within one round (the flooder's weight + 1). */
static void test_no_starvation(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    order *o = calloc(1, sizeof *o);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-starve", 1, 6000, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_worker(p, g);
    rec_arg flood = {.o = o, .who = 0};
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(submit_as(p, "flood", task_record, &flood), SLUICE_OK);
    }
    rec_arg late[3];
    const char *names[3] = {"late-a", "late-b", "late-c"};
    for (int i = 0; i < 3; i++) {
        late[i] = (rec_arg){.o = o, .who = i + 1};
        assert_int_equal(submit_as(p, names[i], task_record, &late[i]), SLUICE_OK);
    }
    gate_open(g);
    WAIT_FOR(atomic_load(&o->n) == 5003, "all ran");
    for (int i = 1; i <= 3; i++) {
        size_t at = 0;
        while (o->who[at] != i) {
            at++;
        }
        print_message("late tenant %d started at position %zu of 5003\n", i, at);
        /* One round: every active tenant once (weights 1). */
        assert_true(at <= 4);
    }
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    free(o);
    gate_free(g);
    tally_free(t);
}

/* queued_limit: a full tenant gets EFULL (or evicts its own oldest) while
 * the others still get in; the refusals count on that tenant. */
static void test_queued_limit(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-quota", 1, 100, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_tenant_config capped = {.queued_limit = 3};
    assert_int_equal(sluice_pool_tenant_set(p, "small", &capped, NULL, 0), SLUICE_OK);
    sluice_tenant_config evicting = {.queued_limit = 2, .overflow = SLUICE_TENANT_OVERFLOW_DROP_OLDEST};
    assert_int_equal(sluice_pool_tenant_set(p, "evicts", &evicting, NULL, 0), SLUICE_OK);
    hold_worker(p, g);
    _Atomic uint64_t ran = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit_as(p, "small", task_inc, (void *)&ran), SLUICE_OK);
    }
    assert_int_equal(submit_as(p, "small", task_inc, (void *)&ran), SLUICE_EFULL);
    assert_int_equal(sluice_pool_try_submit(p, task_inc, (void *)&ran), SLUICE_OK); /* "default" gets in */
    assert_int_equal(submit_as(p, "other", task_inc, (void *)&ran), SLUICE_OK);

    int args[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "evicts", task_nop, &args[i]), SLUICE_OK);
    }
    /* Two evicted: its own oldest, in order. */
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 2);
    assert_ptr_equal(t->abandoned_args[0], &args[0]);
    assert_ptr_equal(t->abandoned_args[1], &args[1]);

    sluice_tenant_stats s;
    assert_true(tenant_find(p, "small", &s));
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.queued, 3);
    assert_int_equal(s.submitted, 3);
    assert_true(tenant_find(p, "evicts", &s));
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.queued, 2);
    sluice_pool_stats ps = stats_now(p);
    assert_int_equal(ps.rejected, 1);
    assert_int_equal(ps.dropped, 2);
    gate_open(g);
    ASSERT_TENANT_IDENTITIES(p);
    assert_int_equal(atomic_load(&ran), 5);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

typedef struct gated_arg {
    gate *g;
    _Atomic int *running;
    _Atomic int *peak;
} gated_arg;

static int task_gated_count(void *arg)
{
    gated_arg *a = arg;
    int now = atomic_fetch_add(a->running, 1) + 1;
    int peak = atomic_load(a->peak);
    while (now > peak && !atomic_compare_exchange_weak(a->peak, &peak, now)) {
    }
    gate_pass(a->g, true);
    atomic_fetch_sub(a->running, 1);
    return 0;
}

/* running_limit, strict: at most N of the tenant's tasks run even with
 * idle workers. Work-conserving: a capped tenant borrows idle workers when
 * nobody else has work, and gives way when someone does. */
static void test_running_limit(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-run", 4, 100, t);
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    _Atomic int running = 0, peak = 0;
    gated_arg ga = {.g = g, .running = &running, .peak = &peak};

    sluice_tenant_config strict = {.running_limit = 1, .strict = true};
    assert_int_equal(sluice_pool_tenant_set(p, "strict", &strict, NULL, 0), SLUICE_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "strict", task_gated_count, &ga), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 1, "one strict task at the gate");
    /* The other three workers looked, found nothing that may start, and
     * parked: no second task of the tenant started. */
    WAIT_FOR(stats_now(p).idle == 3, "three workers parked");
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "strict", &s));
    assert_int_equal(s.running, 1);
    assert_int_equal(s.queued, 3);
    assert_int_equal(atomic_load(&g->entered), 1);
    /* Raising the limit lets queued tasks start at once. */
    strict.running_limit = 2;
    assert_int_equal(sluice_pool_tenant_set(p, "strict", &strict, NULL, 0), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 2, "a second strict task starts");
    gate_open(g);
    ASSERT_TENANT_IDENTITIES(p);
    assert_true(atomic_load(&peak) <= 2);
    gate_close(g);

    /* Work-conserving with nobody else: borrows all four workers. */
    sluice_tenant_config wc = {.running_limit = 1};
    assert_int_equal(sluice_pool_tenant_set(p, "wc", &wc, NULL, 0), SLUICE_OK);
    atomic_store(&peak, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "wc", task_gated_count, &ga), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 4, "four wc tasks borrow four workers");
    gate_open(g);
    ASSERT_TENANT_IDENTITIES(p);
    gate_close(g);

    /* Work-conserving with others waiting: the capped tenant runs one,
     * the other tenant gets the rest. */
    gate *g2 = gate_new();
    gated_arg gb = {.g = g2, .running = &running, .peak = &peak};
    int entered0 = atomic_load(&g->entered);
    /* Hold all four workers with "other" first, so both queue up. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "other", task_gated_count, &gb), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g2->inside) == 4, "four workers held");
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "wc", task_gated_count, &ga), SLUICE_OK);
        assert_int_equal(submit_as(p, "other", task_gated_count, &ga), SLUICE_OK);
    }
    gate_open(g2); /* the four first tasks finish; four workers pick again */
    WAIT_FOR(atomic_load(&g->inside) == 4, "the next four started");
    assert_true(tenant_find(p, "wc", &s));
    print_message("wc running %u, queued %zu\n", s.running, s.queued);
    assert_int_equal(s.running, 1);
    assert_int_equal(atomic_load(&g->entered) - entered0, 4);
    gate_open(g);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    gate_free(g2);
    gate_free(g);
    tally_free(t);
}

/* A strict tenant at its limit with tasks queued, idle workers parked
 * (its tasks were not pending) and the pool shrinking meanwhile: once its
 * running task returns, the rest still run. */
static void test_strict_after_shrink(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-shrink", 3, 16, t);
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_tenant_config strict = {.running_limit = 1, .strict = true};
    assert_int_equal(sluice_pool_tenant_set(p, "s", &strict, NULL, 0), SLUICE_OK);
    _Atomic uint64_t ran = 0;
    assert_int_equal(submit_as(p, "s", task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the strict task runs");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit_as(p, "s", task_inc, (void *)&ran), SLUICE_OK);
    }
    WAIT_FOR(stats_now(p).idle == 2, "the other two workers parked");
    /* Shrink: the worker at the gate retires once its task returns. */
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    gate_open(g);
    WAIT_FOR(atomic_load(&ran) == 3, "the strict tenant's queued tasks ran");
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Names: bad ones, unknown ones under known_only, handles of another pool,
 * tenants on a FIFO pool. */
static void test_unknown_and_misuse(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-known", 2, 16, t);
    cfg.fair.known_only = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    _Atomic uint64_t ran = 0;
    assert_int_equal(submit_as(p, "stranger", task_inc, (void *)&ran), SLUICE_ENOENT);
    sluice_tenant *h = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, "stranger", &h), SLUICE_ENOENT);
    assert_int_equal(submit_as(p, "bad name", task_inc, (void *)&ran), SLUICE_EINVAL);
    assert_int_equal(submit_as(p, "", task_inc, (void *)&ran), SLUICE_EINVAL);
    char longname[SLUICE_TENANT_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(submit_as(p, longname, task_inc, (void *)&ran), SLUICE_EINVAL);
    longname[SLUICE_TENANT_NAME_MAX] = '\0'; /* exactly the maximum */
    sluice_tenant_config tc = {0};
    assert_int_equal(sluice_pool_tenant_set(p, longname, &tc, NULL, 0), SLUICE_OK);
    assert_int_equal(submit_as(p, longname, task_inc, (void *)&ran), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_inc, (void *)&ran), SLUICE_OK); /* "default" */

    char err[128];
    sluice_tenant_config heavy = {.weight = SLUICE_TENANT_WEIGHT_MAX + 1};
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &heavy, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "weight"));
    heavy.weight = SLUICE_TENANT_WEIGHT_MAX;
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &heavy, err, sizeof err), SLUICE_OK);
    sluice_tenant_config badov = {.overflow = (sluice_tenant_overflow)7};
    assert_int_equal(sluice_pool_tenant_set(p, "x", &badov, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overflow"));
    assert_int_equal(sluice_pool_tenant_set(p, "a b", &tc, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "tenant"));

    assert_int_equal(sluice_pool_tenant_acquire(p, "heavy", &h), SLUICE_OK);
    assert_string_equal(sluice_tenant_name(h), "heavy");

    /* A handle of this pool given to another pool. */
    sluice_pool_config c2;
    fair_config(&c2, "fair-other", 1, 4, t);
    sluice_pool *p2;
    CREATE_POOL(&c2, &p2);
    assert_int_equal(submit_h(p2, h, task_inc, (void *)&ran), SLUICE_EINVAL);
    assert_int_equal(submit_h(p, h, task_inc, (void *)&ran), SLUICE_OK);
    sluice_tenant_release(h);
    sluice_tenant_release(NULL);

    /* FIFO pools take no tenants. */
    sluice_pool_config c3;
    base_config(&c3, "fifo", 1, 4, t);
    sluice_pool *p3;
    CREATE_POOL(&c3, &p3);
    assert_int_equal(submit_as(p3, "a", task_inc, (void *)&ran), SLUICE_ENOTSUP);
    assert_int_equal(sluice_pool_tenant_set(p3, "a", &tc, NULL, 0), SLUICE_ENOTSUP);
    assert_int_equal(sluice_pool_tenant_acquire(p3, "a", &h), SLUICE_ENOTSUP);
    assert_int_equal(sluice_pool_tenants_get(p3, NULL, 0), 0);
    /* The forgotten record of a FIFO or NULL pool: all zeros, named. */
    sluice_tenant_stats fg;
    memset(&fg, 0xab, sizeof fg);
    assert_int_equal(sluice_pool_tenants_snapshot(p3, NULL, 0, &fg), 0);
    assert_string_equal(fg.name, SLUICE_TENANT_FORGOTTEN);
    assert_int_equal(fg.submitted + fg.completed + fg.wait.count + fg.incarnation + fg.queued, 0);
    memset(&fg, 0xab, sizeof fg);
    assert_int_equal(sluice_pool_tenants_snapshot(NULL, NULL, 0, &fg), 0);
    assert_int_equal(fg.submitted + fg.rejected + fg.wait.bucket_count, 0);
    assert_int_equal(sluice_pool_tenants_snapshot(NULL, NULL, 0, NULL), 0);

    /* Bad fair config is refused at create, naming the field. */
    sluice_pool_config c4;
    fair_config(&c4, "fair-bad", 1, 4, t);
    c4.fair.hand_size = 17;
    sluice_pool *p4 = NULL;
    assert_int_equal(sluice_pool_create(&c4, &p4, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "fair.hand_size"));
    c4.fair.hand_size = 0;
    c4.fair.tenant_default.weight = SLUICE_TENANT_WEIGHT_MAX + 1;
    assert_int_equal(sluice_pool_create(&c4, &p4, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "fair.tenant_default.weight"));
    c4.fair.tenant_default.weight = 0;
    c4.queue_discipline = (sluice_queue_discipline)9;
    assert_int_equal(sluice_pool_create(&c4, &p4, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "queue_discipline"));
    assert_string_equal(sluice_queue_discipline_name(SLUICE_QUEUE_FAIR), "fair");
    assert_string_equal(sluice_tenant_overflow_name(SLUICE_TENANT_OVERFLOW_DROP_OLDEST), "drop_oldest");
    assert_string_equal(sluice_queue_discipline_name(SLUICE_QUEUE_DISCIPLINE_COUNT_), "unknown");
    sluice_queue_discipline qd = SLUICE_QUEUE_FIFO;
    assert_int_equal(sluice_queue_discipline_parse("fair", &qd), SLUICE_OK);
    assert_int_equal(qd, SLUICE_QUEUE_FAIR);
    assert_int_equal(sluice_queue_discipline_parse("lifo", &qd), SLUICE_EINVAL);
    sluice_tenant_overflow to = SLUICE_TENANT_OVERFLOW_REJECT;
    assert_int_equal(sluice_tenant_overflow_parse("drop_oldest", &to), SLUICE_OK);
    assert_int_equal(to, SLUICE_TENANT_OVERFLOW_DROP_OLDEST);

    WAIT_FOR(atomic_load(&ran) == 3, "the accepted tasks ran");
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p3);
    sluice_pool_destroy(p2);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Beyond max_tenants names share the shard queues: one flooding name
 * occupies at most its hand, and other names mostly land elsewhere and
 * start within a round. */
static void test_shuffle_shard_isolation(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    order *o = calloc(1, sizeof *o);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-shard", 1, 4000, t);
    cfg.fair.max_tenants = 2;
    cfg.fair.shard_queues = 16;
    cfg.fair.hand_size = 2;
    cfg.fair.idle_forget_ns = UINT64_MAX;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_worker(p, g);
    rec_arg tracked = {.o = o, .who = 0};
    assert_int_equal(submit_as(p, "t1", task_record, &tracked), SLUICE_OK);
    assert_int_equal(submit_as(p, "t2", task_record, &tracked), SLUICE_OK);
    rec_arg flood = {.o = o, .who = 1};
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(submit_as(p, "flood", task_record, &flood), SLUICE_OK);
    }
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 3); /* default, t1, t2 */
    assert_int_equal(ts.sharded_submits, 2000);
    size_t n = sluice_pool_tenants_get(p, NULL, 0);
    sluice_tenant_stats *all = calloc(n + 32, sizeof *all);
    n = sluice_pool_tenants_get(p, all, n + 32);
    bool flood_shard[16] = {false};
    unsigned used = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].shard && all[i].queued > 0) {
            unsigned idx = (unsigned)atoi(all[i].name + strlen("~shard-"));
            flood_shard[idx] = true;
            used++;
        }
    }
    assert_true(used >= 1 && used <= 2); /* its hand, and nothing else */
    /* 20 other names, one task each: each goes to the shortest queue of
     * its hand, which is a flood queue only if both its queues are. */
    rec_arg victims = {.o = o, .who = 2};
    for (int v = 0; v < 20; v++) {
        char name[32];
        snprintf(name, sizeof name, "victim-%d", v);
        assert_int_equal(submit_as(p, name, task_record, &victims), SLUICE_OK);
    }
    n = sluice_pool_tenants_get(p, all, n + 32);
    size_t victim_tasks_clear = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].shard) {
            unsigned idx = (unsigned)atoi(all[i].name + strlen("~shard-"));
            if (!flood_shard[idx]) {
                victim_tasks_clear += all[i].queued;
            }
        }
    }
    unsigned clear = (unsigned)victim_tasks_clear;
    print_message("%u of 20 sharded names landed off the flood's queues\n", clear);
    assert_true(clear >= 17);
    gate_open(g);
    WAIT_FOR(atomic_load(&o->n) == 2022, "all ran");
    /* Every victim off the flood's queues starts within a few rounds of
     * the active queues (at most 16 shard queues + 3 tracked each), long
     * before the flood's 2000 are through. */
    size_t victims_early = 0;
    for (size_t i = 0; i < 200; i++) {
        victims_early += o->who[i] == 2;
    }
    assert_true(victims_early >= clear);
    free(all);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    free(o);
    gate_free(g);
    tally_free(t);
}

static int task_count_down(void *arg)
{
    latch_count_down(arg);
    return 0;
}

/* Sharded names on an idle pool spread evenly over the shard queues: with
 * every queue empty, "the shortest queue of its hand" is a tie, and it
 * must not be broken toward the lowest-numbered queue (the hand used to
 * be kept sorted, so ~shard-0 took every name whose hand held it: a
 * quarter of all traffic here, four times its share, and in a scrape the
 * low shards outranked real tenants; obs_tenant_metrics saw it under
 * TSan, where the workers kept up with the submitter). Each task runs
 * before the next is submitted, so every submit sees all queues empty;
 * half the names submit by name, half through a handle. */
static void test_shard_ties_spread(void **state)
{
    (void)state;
    enum { SHARDS = 16, NAMES = 1600 };
    tally *t = tally_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-ties", 1, 16, t);
    cfg.fair.max_tenants = 1;
    cfg.fair.shard_queues = SHARDS;
    cfg.fair.hand_size = 4;
    cfg.fair.idle_forget_ns = UINT64_MAX;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(submit_as(p, "tracked", task_nop, NULL), SLUICE_OK); /* the one tracked name */
    for (int i = 0; i < NAMES; i++) {
        char name[32];
        snprintf(name, sizeof name, "name-%d", i);
        latch done;
        latch_init(&done, 1);
        sluice_tenant *h = NULL;
        if (i % 2) {
            assert_int_equal(sluice_pool_tenant_acquire(p, name, &h), SLUICE_OK);
            assert_int_equal(submit_h(p, h, task_count_down, &done), SLUICE_OK);
        } else {
            assert_int_equal(submit_as(p, name, task_count_down, &done), SLUICE_OK);
        }
        LATCH_WAIT(&done, "the name's task");
        sluice_tenant_release(h);
        latch_destroy(&done);
    }
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.sharded_submits, NAMES);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_tenant_stats *all = calloc(64, sizeof *all);
    size_t n = sluice_pool_tenants_get(p, all, 64);
    assert_true(n <= 64);
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    unsigned shards = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].shard) {
            lo = all[i].submitted < lo ? all[i].submitted : lo;
            hi = all[i].submitted > hi ? all[i].submitted : hi;
            sum += all[i].submitted;
            shards++;
        }
    }
    print_message("sharded names per queue on an idle pool: %" PRIu64 " .. %" PRIu64 " (mean %d)\n", lo, hi,
                  NAMES / SHARDS);
    assert_int_equal(sum, NAMES);
    assert_int_equal(shards, SHARDS);
    /* Binomial(1600, 1/16): mean 100, sd 9.7; the old tie-break gave the
     * lowest queue about 400 and the highest about 0. */
    assert_true(hi <= 2 * NAMES / SHARDS);
    assert_true(lo >= NAMES / SHARDS / 2);
    free(all);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Idle tenants are forgotten after idle_forget_ns of the pool clock,
 * unless a handle is held or they are configured. */
static void test_forget_idle(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-forget", 1, 16, t);
    cfg.clock = &fc.clock;
    cfg.fair.idle_forget_ns = SLUICE_NS_PER_SEC;
    cfg.fair.max_tenants = 5;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    _Atomic uint64_t ran = 0;
    sluice_tenant_config tc = {.weight = 3};
    assert_int_equal(sluice_pool_tenant_set(p, "pinned", &tc, NULL, 0), SLUICE_OK);
    sluice_tenant *held;
    assert_int_equal(sluice_pool_tenant_acquire(p, "held", &held), SLUICE_OK);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "passing-%d", i);
        assert_int_equal(submit_as(p, name, task_inc, (void *)&ran), SLUICE_OK);
    }
    assert_int_equal(submit_h(p, held, task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 5, "ran");
    ASSERT_TENANT_IDENTITIES(p);
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 7); /* default, pinned, held, 4 passing */
    /* max_tenants (4 unconfigured) reached: a new name now is sharded. */
    assert_int_equal(submit_as(p, "late", task_inc, (void *)&ran), SLUICE_OK);
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.sharded_submits, 1);
    size_t mem_before = ts.memory_bytes;
    sluice_tenant_stats first, fg;
    assert_true(tenant_find(p, "passing-0", &first));
    assert_true(first.incarnation > 0);
    assert_int_equal(sluice_pool_tenants_snapshot(p, NULL, 0, &fg), 8);
    assert_string_equal(fg.name, SLUICE_TENANT_FORGOTTEN);
    assert_int_equal(fg.submitted + fg.completed + fg.wait.count + fg.incarnation, 0); /* none yet */
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    size_t n = sluice_pool_tenants_snapshot(p, NULL, 0, &fg); /* sweeps */
    /* The four passing names' counts moved to the forgotten record. */
    assert_int_equal(fg.submitted, 4);
    assert_int_equal(fg.completed, 4);
    assert_int_equal(fg.wait.count, 4);
    assert_int_equal(fg.queued + fg.running + fg.incarnation, 0);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.forgotten, 4);
    assert_int_equal(ts.tracked, 3);
    assert_true(ts.memory_bytes < mem_before);
    assert_int_equal(n, 4); /* default, pinned, held, and the shard "late" used */
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "pinned", &s));
    assert_int_equal(s.config.weight, 3);
    assert_true(tenant_find(p, "held", &s));
    assert_int_equal(s.completed, 1);
    /* A forgotten name comes back as new, tracked again (room now). */
    assert_int_equal(submit_as(p, "passing-0", task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 7, "ran");
    assert_true(tenant_find(p, "passing-0", &s));
    WAIT_FOR(tenant_find(p, "passing-0", &s) && s.completed == 1, "counted anew");
    assert_true(s.incarnation > first.incarnation); /* a new tenant under the old name */
    assert_int_equal(sluice_pool_tenants_snapshot(p, NULL, 0, &fg), 5);
    assert_int_equal(fg.submitted, 4); /* the old incarnation's count stays there */
    ASSERT_TENANT_IDENTITIES(p);
    sluice_tenant_release(held);
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    (void)sluice_pool_tenants_get(p, NULL, 0);
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 2); /* default, pinned */
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Pool-level DROP_OLDEST evicts the oldest task of the tenant most over
 * its share (queued / weight), not the pool's oldest. */
static void test_drop_oldest_victim(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-drop", 1, 10, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_tenant_config heavy = {.weight = 4};
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &heavy, NULL, 0), SLUICE_OK);
    hold_worker(p, g);
    int q[4] = {0}, h[6] = {0}, n[3] = {0};
    /* The pool's oldest task is quiet's; heavy has the most queued, but
     * per unit of weight (6/4) less than "light" (3/1). */
    assert_int_equal(submit_as(p, "quiet", task_nop, &q[0]), SLUICE_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(submit_as(p, "heavy", task_nop, &h[i]), SLUICE_OK);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit_as(p, "light", task_nop, &n[i]), SLUICE_OK);
    }
    assert_int_equal(submit_as(p, "quiet", task_nop, &q[1]), SLUICE_OK);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 1);
    assert_ptr_equal(t->abandoned_args[0], &n[0]); /* light's oldest */
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "light", &s));
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.queued, 2);
    gate_open(g);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Deadlines shed per tenant; CALLER_RUNS counts on the tenant. */
static void test_shed_and_caller_runs(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-shed", 1, 4, t);
    cfg.clock = &fc.clock;
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_worker(p, g);
    _Atomic uint64_t ran = 0;
    sluice_submit_opts o = {.tenant_name = "late", .deadline_ns = 5000};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit_ex(p, task_inc, (void *)&ran, &o), SLUICE_OK);
    }
    /* The queue (4) is full with the gate task gone from it: 3 queued + 1 more. */
    sluice_submit_opts o2 = {.tenant_name = "caller"};
    assert_int_equal(sluice_pool_submit_ex(p, task_inc, (void *)&ran, &o2), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(p, task_inc, (void *)&ran, &o2), SLUICE_OK); /* runs here */
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "caller", &s));
    assert_int_equal(s.caller_ran, 1);
    assert_int_equal(s.completed, 1);
    sluice_fake_clock_advance(&fc, 10000);
    gate_open(g);
    WAIT_FOR(tenant_find(p, "late", &s) && s.shed == 3, "shed on the tenant");
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 3);
    ASSERT_TENANT_IDENTITIES(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Drain at its deadline and destroy hand back every queued task of every
 * tenant, strict-capped ones included; the counts land per tenant. */
static void test_drain_destroy_per_tenant(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-drain", 2, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_tenant_config strict = {.running_limit = 1, .strict = true};
    assert_int_equal(sluice_pool_tenant_set(p, "strict", &strict, NULL, 0), SLUICE_OK);
    /* strict: one at the gate, 5 queued that may not start. */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(submit_as(p, "strict", task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 1, "one strict task runs");
    assert_int_equal(submit_as(p, "b", task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 2, "b's task runs");
    for (int i = 0; i < 4; i++) {
        assert_int_equal(submit_as(p, "b", task_gate, g), SLUICE_OK);
        assert_int_equal(submit_as(p, "c", task_gate, g), SLUICE_OK);
    }
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, SLUICE_NS_PER_MS, &rep), SLUICE_ETIMEDOUT);
    assert_int_equal(rep.handed_back, 13);
    assert_int_equal(rep.still_running, 2);
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "strict", &s));
    assert_int_equal(s.abandoned, 5);
    assert_true(tenant_find(p, "b", &s));
    assert_int_equal(s.abandoned, 4);
    assert_true(tenant_find(p, "c", &s));
    assert_int_equal(s.abandoned, 4);
    ASSERT_TENANT_IDENTITIES(p); /* the gated tasks saw the stop flag */
    sluice_pool_destroy(p);

    /* destroy without drain */
    gate_close(g);
    sluice_pool *p2;
    fair_config(&cfg, "fair-destroy", 1, 64, t);
    CREATE_POOL(&cfg, &p2);
    hold_worker(p2, g);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit_as(p2, "x", task_nop, NULL), SLUICE_OK);
        assert_int_equal(submit_as(p2, "y", task_nop, NULL), SLUICE_OK);
    }
    uint64_t before = atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]);
    sluice_pool_destroy(p2);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]) - before, 6);
    gate_free(g);
    tally_free(t);
}

/* sluice_pool_tenant_unset: a tenant set by name goes back to the
 * default's config and to being tracked because seen (forgotten once
 * idle); "default" takes the default config but stays; every refusal. */
static void test_tenant_unset(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-unset", 1, 16, t);
    cfg.clock = &fc.clock;
    cfg.fair.idle_forget_ns = SLUICE_NS_PER_SEC;
    cfg.fair.tenant_default.weight = 2;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    _Atomic uint64_t ran = 0;
    char err[256];

    sluice_tenant_config tc = {.weight = 7, .running_limit = 1, .queued_limit = 3};
    assert_int_equal(sluice_pool_tenant_set(p, "acme", &tc, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_pool_tenant_set(p, "default", &tc, NULL, 0), SLUICE_OK);
    assert_int_equal(submit_as(p, "acme", task_inc, (void *)&ran), SLUICE_OK);
    assert_int_equal(submit_as(p, "seen", task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 2, "both ran");
    ASSERT_TENANT_IDENTITIES(p);
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 3);
    assert_int_equal(ts.configured, 2); /* default, acme */

    /* Refusals, each naming what is wrong. */
    assert_int_equal(sluice_pool_tenant_unset(p, "seen", err, sizeof err), SLUICE_ENOENT);
    assert_non_null(strstr(err, "seen"));
    assert_int_equal(sluice_pool_tenant_unset(p, "never", err, sizeof err), SLUICE_ENOENT);
    assert_int_equal(sluice_pool_tenant_unset(p, "a b", err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "tenant"));
    assert_int_equal(sluice_pool_tenant_unset(p, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenant_unset(NULL, "acme", err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenant_unset(p, "seen", NULL, 0), SLUICE_ENOENT); /* errbuf optional */

    /* acme: the default's config, unconfigured, its counts kept. */
    assert_int_equal(sluice_pool_tenant_unset(p, "acme", err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "acme", &s));
    assert_false(s.configured);
    assert_int_equal(s.config.weight, 2);
    assert_int_equal(s.config.running_limit, 0);
    assert_int_equal(s.config.queued_limit, 0);
    assert_int_equal(s.completed, 1);
    assert_int_equal(sluice_pool_tenant_unset(p, "acme", NULL, 0), SLUICE_ENOENT); /* once */
    /* default: the default's config, still configured. */
    assert_int_equal(sluice_pool_tenant_unset(p, "default", NULL, 0), SLUICE_OK);
    assert_true(tenant_find(p, "default", &s));
    assert_true(s.configured);
    assert_int_equal(s.config.weight, 2);
    assert_int_equal(sluice_pool_tenant_unset(p, "default", NULL, 0), SLUICE_ENOENT);
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.tracked, 3);
    assert_int_equal(ts.configured, 1);

    /* Once idle past idle_forget, acme is forgotten like "seen". */
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    (void)sluice_pool_tenants_get(p, NULL, 0);
    assert_false(tenant_find(p, "acme", &s));
    assert_false(tenant_find(p, "seen", &s));
    assert_true(tenant_find(p, "default", &s));
    sluice_pool_tenancy_get(p, &ts);
    assert_int_equal(ts.forgotten, 2);
    ASSERT_TENANT_IDENTITIES(p);

    /* Set again after unset: configured again. */
    assert_int_equal(sluice_pool_tenant_set(p, "acme", &tc, NULL, 0), SLUICE_OK);
    assert_true(tenant_find(p, "acme", &s));
    assert_true(s.configured);
    assert_int_equal(s.config.weight, 7);

    /* known_only: an unset name is unknown again by name; a handle
     * acquired before keeps working. */
    sluice_pool *kp;
    fair_config(&cfg, "fair-unset-known", 1, 16, t);
    cfg.fair.known_only = true;
    CREATE_POOL(&cfg, &kp);
    assert_int_equal(sluice_pool_tenant_set(kp, "k", &tc, NULL, 0), SLUICE_OK);
    sluice_tenant *kh;
    assert_int_equal(sluice_pool_tenant_acquire(kp, "k", &kh), SLUICE_OK);
    assert_int_equal(submit_as(kp, "k", task_inc, (void *)&ran), SLUICE_OK);
    assert_int_equal(sluice_pool_tenant_unset(kp, "k", NULL, 0), SLUICE_OK);
    assert_int_equal(submit_as(kp, "k", task_inc, (void *)&ran), SLUICE_ENOENT);
    sluice_tenant *kh2;
    assert_int_equal(sluice_pool_tenant_acquire(kp, "k", &kh2), SLUICE_ENOENT);
    assert_int_equal(submit_h(kp, kh, task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 4, "k's two tasks ran");
    ASSERT_TENANT_IDENTITIES(kp);
    sluice_tenant_release(kh);
    sluice_pool_destroy(kp);

    /* Draining: refused. A FIFO pool: not supported. */
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, SLUICE_NS_PER_SEC, &rep), SLUICE_OK);
    assert_int_equal(sluice_pool_tenant_unset(p, "acme", err, sizeof err), SLUICE_ECLOSED);
    assert_non_null(strstr(err, "draining"));
    sluice_pool_destroy(p);
    sluice_pool *fifo;
    base_config(&cfg, "fifo-unset", 1, 16, t);
    CREATE_POOL(&cfg, &fifo);
    assert_int_equal(sluice_pool_tenant_unset(fifo, "acme", err, sizeof err), SLUICE_ENOTSUP);
    assert_int_equal(sluice_pool_tenant_default_set(fifo, &tc, err, sizeof err), SLUICE_ENOTSUP);
    assert_non_null(strstr(err, "fair"));
    sluice_pool_destroy(fifo);
    tally_free(t);
}

/* sluice_pool_tenant_default_set: every tenant not set by name follows at
 * once (seen ones, "default", the shard queues, new names); a tenant set
 * by name keeps its own; config_get reports it; a higher running limit
 * lets queued tasks start; bad values are refused and change nothing. */
static void test_tenant_default_set(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    fair_config(&cfg, "fair-dflt", 3, 64, t);
    cfg.prewarm = true;
    cfg.fair.max_tenants = 1; /* "seen" tracked, a second name sharded */
    cfg.fair.tenant_default = (sluice_tenant_config){.running_limit = 1, .strict = true};
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    _Atomic int running = 0, peak = 0;
    gated_arg ga = {.g = g, .running = &running, .peak = &peak};
    sluice_tenant_config own = {.weight = 5};
    assert_int_equal(sluice_pool_tenant_set(p, "own", &own, NULL, 0), SLUICE_OK);

    /* "seen" (strict, limit 1 from the default): one runs, two wait. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit_as(p, "seen", task_gated_count, &ga), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 1, "one of seen's tasks runs");
    WAIT_FOR(stats_now(p).idle == 2, "two workers parked");
    assert_int_equal(atomic_load(&g->entered), 1);

    /* Refused: nothing changes. */
    char err[256];
    sluice_tenant_config bad = {.weight = SLUICE_TENANT_WEIGHT_MAX + 1};
    assert_int_equal(sluice_pool_tenant_default_set(p, &bad, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "weight"));
    assert_int_equal(sluice_pool_tenant_default_set(p, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenant_default_set(NULL, &own, NULL, 0), SLUICE_EINVAL);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.fair.tenant_default.running_limit, 1);

    /* The new default: weight 3, limit 2, strict. seen's second task
     * starts at once; the third waits for the limit. */
    sluice_tenant_config dflt = {.weight = 3, .running_limit = 2, .strict = true};
    assert_int_equal(sluice_pool_tenant_default_set(p, &dflt, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    WAIT_FOR(atomic_load(&g->inside) == 2, "a second task of seen starts");
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.fair.tenant_default.weight, 3);
    assert_int_equal(got.fair.tenant_default.running_limit, 2);
    assert_true(got.fair.tenant_default.strict);
    WAIT_FOR(stats_now(p).idle == 1, "the third worker parked: seen's third task may not start");
    assert_int_equal(atomic_load(&g->entered), 2);
    sluice_tenant_stats s;
    assert_true(tenant_find(p, "seen", &s));
    assert_int_equal(s.config.weight, 3);
    assert_int_equal(s.config.running_limit, 2);
    assert_true(tenant_find(p, "default", &s));
    assert_int_equal(s.config.weight, 3);
    assert_true(tenant_find(p, "own", &s));
    assert_int_equal(s.config.weight, 5); /* set by name: its own */
    assert_int_equal(s.config.running_limit, 0);
    gate_open(g);
    WAIT_FOR(atomic_load(&g->entered) == 3, "seen's third task ran");
    ASSERT_TENANT_IDENTITIES(p);

    /* A name beyond max_tenants lands on a shard queue, which follows too;
     * so does a tenant unset later. */
    _Atomic uint64_t ran = 0;
    assert_int_equal(submit_as(p, "sharded", task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 1, "the sharded name's task ran");
    size_t n = sluice_pool_tenants_get(p, NULL, 0);
    sluice_tenant_stats *all = calloc(n, sizeof *all);
    n = sluice_pool_tenants_get(p, all, n);
    unsigned shards_seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].shard) {
            assert_int_equal(all[i].config.weight, 3);
            shards_seen++;
        }
    }
    assert_int_equal(shards_seen, 1);
    free(all);
    assert_int_equal(sluice_pool_tenant_unset(p, "own", NULL, 0), SLUICE_OK);
    assert_true(tenant_find(p, "own", &s));
    assert_int_equal(s.config.weight, 3);
    ASSERT_TENANT_IDENTITIES(p);
    assert_true(atomic_load(&peak) <= 2);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_1_2_4),
        cmocka_unit_test(test_no_starvation),
        cmocka_unit_test(test_queued_limit),
        cmocka_unit_test(test_running_limit),
        cmocka_unit_test(test_strict_after_shrink),
        cmocka_unit_test(test_unknown_and_misuse),
        cmocka_unit_test(test_shuffle_shard_isolation),
        cmocka_unit_test(test_shard_ties_spread),
        cmocka_unit_test(test_forget_idle),
        cmocka_unit_test(test_drop_oldest_victim),
        cmocka_unit_test(test_shed_and_caller_runs),
        cmocka_unit_test(test_drain_destroy_per_tenant),
        cmocka_unit_test(test_tenant_unset),
        cmocka_unit_test(test_tenant_default_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
