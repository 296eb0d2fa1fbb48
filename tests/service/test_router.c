/*
 * tests/service/test_router.c - the tier router (sluice/router.h): the
 * resolution order (tier, listed tenant, "*", unknown), the refusals that
 * keep a name meaning one pool, its bounds, and that a submit lands on the
 * tier's pool. Routes from many threads at once for TSan.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/router.h"
#include "sluice/tenant.h"

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static sluice_pool *make_pool(const char *name)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 2;
    pc.queue_capacity = 64;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    return p;
}

typedef struct fixture {
    sluice_pool *premium, *standard, *free_;
    sluice_router *r;
} fixture;

static const char *const PREMIUM[] = {"acme", NULL};
static const char *const STANDARD[] = {"b", "c", "d", "e", NULL};
static const char *const FREE[] = {"*", NULL};

static void make(fixture *f, bool with_default)
{
    f->premium = make_pool("premium");
    f->standard = make_pool("standard");
    f->free_ = make_pool("free");
    sluice_router_tier tiers[] = {
        {"premium", f->premium, PREMIUM},
        {"standard", f->standard, STANDARD},
        {"free", f->free_, with_default ? FREE : NULL},
    };
    char err[256];
    assert_int_equal(sluice_router_create(tiers, 3, &f->r, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
}

static void unmake(fixture *f)
{
    sluice_router_destroy(f->r);
    sluice_pool_destroy(f->premium);
    sluice_pool_destroy(f->standard);
    sluice_pool_destroy(f->free_);
}

static void test_resolution_order(void **state)
{
    (void)state;
    fixture f;
    make(&f, true);
    sluice_route rt;
    char err[256];
    /* A tier by its name: no tenant. */
    assert_int_equal(sluice_router_route(f.r, "standard", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, f.standard);
    assert_string_equal(rt.tier, "standard");
    assert_null(rt.tenant);
    assert_false(rt.by_default);
    /* A listed tenant: its tier, and the tenant named. */
    assert_int_equal(sluice_router_route(f.r, "acme", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, f.premium);
    assert_string_equal(rt.tier, "premium");
    assert_string_equal(rt.tenant, "acme");
    assert_int_equal(sluice_router_route(f.r, "e", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, f.standard);
    /* An unknown tenant: the tier that lists "*". */
    assert_int_equal(sluice_router_route(f.r, "zeta", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, f.free_);
    assert_string_equal(rt.tenant, "zeta");
    assert_true(rt.by_default);
    assert_int_equal(sluice_router_tier_count(f.r), 3);
    assert_string_equal(sluice_router_tier_get(f.r, 2)->name, "free");
    assert_null(sluice_router_tier_get(f.r, 3));
    unmake(&f);
}

static void test_unknown_is_an_error(void **state)
{
    (void)state;
    fixture f;
    make(&f, false);
    sluice_route rt = {0};
    char err[256];
    assert_int_equal(sluice_router_route(f.r, "zeta", &rt, err, sizeof err), SLUICE_ENOENT);
    assert_string_equal(err, "unknown tier or tenant \"zeta\" (tiers: premium, standard, free)");
    assert_null(rt.pool);
    /* "*" is not a name a caller can route by. */
    assert_int_equal(sluice_router_route(f.r, "*", &rt, err, sizeof err), SLUICE_ENOENT);
    assert_int_equal(sluice_router_route(f.r, "", &rt, NULL, 0), SLUICE_ENOENT);
    int arg = 0;
    assert_int_equal(sluice_router_submit(f.r, "zeta", noop, &arg, NULL), SLUICE_ENOENT);
    assert_int_equal(sluice_router_route(NULL, "acme", &rt, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_router_route(f.r, NULL, &rt, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_router_submit(f.r, "acme", NULL, NULL, NULL), SLUICE_EINVAL);
    unmake(&f);
}

static void test_refusals(void **state)
{
    (void)state;
    sluice_pool *a = make_pool("a"), *b = make_pool("b");
    sluice_router *r = NULL;
    char err[256];
    static const char *const X[] = {"x", NULL}, *const XX[] = {"x", "x", NULL};
    static const char *const ANY[] = {"*", NULL}, *const NAMED_B[] = {"tb", NULL};
    static const char *const EMPTY[] = {"", NULL};
    struct {
        sluice_router_tier tiers[2];
        size_t n;
        const char *want;
    } cases[] = {
        {{{"ta", a, NULL}, {"ta", b, NULL}}, 2, "router: duplicate tier \"ta\""},
        {{{"ta", a, X}, {"tb", b, X}},
         2,
         "router: tenant \"x\" is in tiers ta and tb; a tenant has one tier"},
        {{{"ta", a, XX}}, 1, "router: tier ta lists tenant \"x\" twice"},
        {{{"ta", a, ANY}, {"tb", b, ANY}},
         2,
         "router: tiers ta and tb both take unknown tenants (\"*\"); one may"},
        {{{"ta", a, NAMED_B}, {"tb", b, NULL}},
         2,
         "router: tenant \"tb\" of tier ta is named like the tier tb: a submit for it could mean either"},
        {{{"ta", NULL, NULL}}, 1, "router: tier ta: no pool"},
        {{{"", a, NULL}}, 1, "router: tiers[0]: the name must be 1..255 bytes"},
        {{{NULL, a, NULL}}, 1, "router: tiers[0]: the name must be 1..255 bytes"},
        {{{"ta", a, EMPTY}}, 1, "router: tier ta: tenants[0]: the name must be 1..255 bytes"},
        {{{"ta", a, NULL}}, 0, "router: needs 1..64 tiers, got 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = NULL;
        assert_int_equal(sluice_router_create(cases[i].tiers, cases[i].n, &r, err, sizeof err),
                         SLUICE_EINVAL);
        assert_null(r);
        assert_string_equal(err, cases[i].want);
    }
    /* The tier bound, at it and past it. */
    sluice_router_tier many[SLUICE_ROUTER_MAX_TIERS + 1];
    char names[SLUICE_ROUTER_MAX_TIERS + 1][8];
    for (int i = 0; i <= SLUICE_ROUTER_MAX_TIERS; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        many[i] = (sluice_router_tier){names[i], a, NULL};
    }
    assert_int_equal(sluice_router_create(many, SLUICE_ROUTER_MAX_TIERS, &r, err, sizeof err), SLUICE_OK);
    sluice_route rt;
    assert_int_equal(sluice_router_route(r, "t63", &rt, NULL, 0), SLUICE_OK);
    sluice_router_destroy(r);
    r = NULL;
    assert_int_equal(sluice_router_create(many, SLUICE_ROUTER_MAX_TIERS + 1, &r, err, sizeof err),
                     SLUICE_EINVAL);
    assert_string_equal(err, "router: needs 1..64 tiers, got 65");
    sluice_router_destroy(NULL); /* a no-op */
    sluice_pool_destroy(a);
    sluice_pool_destroy(b);
}

/* ---- submits land on the tier's pool -------------------------------- */

typedef struct landed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ran;
} landed;

static int count_task(void *arg)
{
    landed *l = arg;
    pthread_mutex_lock(&l->mu);
    l->ran++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void test_submit_lands(void **state)
{
    (void)state;
    fixture f;
    make(&f, true);
    landed l = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    assert_int_equal(sluice_router_submit(f.r, "acme", count_task, &l, NULL), SLUICE_OK);
    assert_int_equal(sluice_router_submit(f.r, "premium", count_task, &l, NULL), SLUICE_OK);
    assert_int_equal(sluice_router_submit(f.r, "c", count_task, &l, NULL), SLUICE_OK);
    assert_int_equal(sluice_router_submit(f.r, "somebody", count_task, &l, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(f.premium, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(f.standard, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(f.free_, 0, NULL), SLUICE_OK);
    sluice_pool_stats st;
    sluice_pool_stats_get(f.premium, &st);
    assert_int_equal(st.completed, 2);
    sluice_pool_stats_get(f.standard, &st);
    assert_int_equal(st.completed, 1);
    sluice_pool_stats_get(f.free_, &st);
    assert_int_equal(st.completed, 1);
    assert_int_equal(l.ran, 4);
    unmake(&f);
}

/* ---- many threads routing at once (TSan) ---------------------------- */

typedef struct racer {
    const sluice_router *r;
    const fixture *f;
    atomic_int wrong;
} racer;

static void *route_many(void *arg)
{
    racer *rc = arg;
    static const char *const names[] = {"acme", "b", "premium", "nobody", "e", "free"};
    for (int i = 0; i < 20000; i++) {
        sluice_route rt;
        const char *n = names[i % 6];
        if (sluice_router_route(rc->r, n, &rt, NULL, 0) != SLUICE_OK) {
            atomic_fetch_add(&rc->wrong, 1);
            continue;
        }
        sluice_pool *want = (i % 6 == 0 || i % 6 == 2)   ? rc->f->premium
                            : (i % 6 == 1 || i % 6 == 4) ? rc->f->standard
                                                         : rc->f->free_;
        if (rt.pool != want) {
            atomic_fetch_add(&rc->wrong, 1);
        }
    }
    return NULL;
}

static void test_concurrent_routes(void **state)
{
    (void)state;
    fixture f;
    make(&f, true);
    racer rc = {f.r, &f, 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, route_many, &rc), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(atomic_load(&rc.wrong), 0);
    unmake(&f);
}

/* A fair tier: the submit carries the tenant (a listed one by the
 * router's handle, an unknown one taken by "*" by name, a caller's own
 * tenant_name wins), so the pool counts each under its name. */
static void test_fair_tier_carries_tenant(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "shared";
    pc.workers = 2;
    pc.queue_capacity = 64;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    static const char *const LIST[] = {"acme", "*", NULL};
    sluice_router_tier tier = {"standard", p, LIST};
    sluice_router *r = NULL;
    assert_int_equal(sluice_router_create(&tier, 1, &r, err, sizeof err), SLUICE_OK);
    sluice_route rt;
    assert_int_equal(sluice_router_route(r, "acme", &rt, NULL, 0), SLUICE_OK);
    assert_true(rt.fair);
    assert_non_null(rt.handle);
    assert_int_equal(sluice_router_route(r, "zed", &rt, NULL, 0), SLUICE_OK);
    assert_null(rt.handle);
    assert_int_equal(sluice_router_submit(r, "acme", noop, NULL, NULL), SLUICE_OK);
    assert_int_equal(sluice_router_submit(r, "acme", noop, NULL, NULL), SLUICE_OK);
    assert_int_equal(sluice_router_submit(r, "zed", noop, NULL, NULL), SLUICE_OK);
    sluice_submit_opts own = {.tenant_name = "mine"};
    assert_int_equal(sluice_router_submit(r, "acme", noop, NULL, &own), SLUICE_OK);
    assert_int_equal(sluice_router_submit(r, "standard", noop, NULL, NULL), SLUICE_OK); /* no tenant */
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_tenant_stats ts[8];
    size_t n = sluice_pool_tenants_get(p, ts, 8);
    assert_true(n <= 8);
    uint64_t acme = 0, zed = 0, mine = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        acme += strcmp(ts[i].name, "acme") == 0 ? ts[i].submitted : 0;
        zed += strcmp(ts[i].name, "zed") == 0 ? ts[i].submitted : 0;
        mine += strcmp(ts[i].name, "mine") == 0 ? ts[i].submitted : 0;
        total += ts[i].submitted;
    }
    assert_int_equal(acme, 2);
    assert_int_equal(zed, 1);
    assert_int_equal(mine, 1);
    assert_int_equal(total, 5); /* the tier-named submit went to the default tenant */
    sluice_router_destroy(r);   /* releases the handle before the pool goes */
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_order),  cmocka_unit_test(test_unknown_is_an_error),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_submit_lands),
        cmocka_unit_test(test_concurrent_routes), cmocka_unit_test(test_fair_tier_carries_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
