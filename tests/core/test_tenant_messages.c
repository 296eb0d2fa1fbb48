/*
 * tests/core/test_tenant_messages.c - what the tenant setters of
 * sluice/tenant.h say when they refuse: "SLUICE_EINVAL naming the bad
 * field in errbuf", each message beginning with the tenant it is about
 * (`tenant "gold": weight 10001 is out of range 0..10000 (0 means 1)`).
 * Every field of sluice_tenant_config and every argument at its extremes,
 * through sluice_pool_tenant_set, _unset, _default_set, _tenants_apply
 * and pool create's fair.tenant_default; the exact text is asserted, so a message that
 * stops naming its field or tenant fails here.
 *
 * Single-threaded apart from the pool's own workers; nothing waits.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/pool.h"
#include "sluice/tenant.h"

static sluice_pool *make_pool(const char *name, sluice_queue_discipline discipline)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 2;
    pc.queue_capacity = 16;
    pc.queue_discipline = discipline;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
}

/* tenant_set(name, cfg) is refused with `want` (r) word for word. */
static void expect_set(sluice_pool *p, const char *name, const sluice_tenant_config *cfg, sluice_err want_r,
                       const char *want)
{
    char err[512];
    memset(err, 'X', sizeof err);
    sluice_err r = sluice_pool_tenant_set(p, name, cfg, err, sizeof err);
    if (r != want_r || strcmp(err, want) != 0) {
        fail_msg("tenant_set(%s): got %d \"%s\"\nwant %d \"%s\"", name ? name : "NULL", (int)r, err,
                 (int)want_r, want);
    }
}

static void expect_default(sluice_pool *p, const sluice_tenant_config *cfg, sluice_err want_r,
                           const char *want)
{
    char err[512];
    memset(err, 'X', sizeof err);
    sluice_err r = sluice_pool_tenant_default_set(p, cfg, err, sizeof err);
    if (r != want_r || strcmp(err, want) != 0) {
        fail_msg("tenant_default_set: got %d \"%s\"\nwant %d \"%s\"", (int)r, err, (int)want_r, want);
    }
}

/* The name: NULL, empty, one past the maximum, far past it, and bytes
 * outside the charset (shown as '?', named by value and place). */
static void test_name_extremes(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("tenants", SLUICE_QUEUE_FAIR);
    sluice_tenant_config tc = {0};
    expect_set(p, NULL, &tc, SLUICE_EINVAL, "tenant name: NULL; must be 1..64 bytes of [A-Za-z0-9_.:-]");
    expect_set(p, "", &tc, SLUICE_EINVAL,
               "tenant \"\": name is 0 bytes; must be 1..64 bytes of [A-Za-z0-9_.:-]");
    char name[4096];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    name[SLUICE_TENANT_NAME_MAX] = '\0';
    expect_set(p, name, &tc, SLUICE_OK, ""); /* exactly the maximum */
    name[SLUICE_TENANT_NAME_MAX] = 'b';
    name[SLUICE_TENANT_NAME_MAX + 1] = '\0';
    expect_set(p, name, &tc, SLUICE_EINVAL,
               "tenant \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": name is 65 bytes; must be 1..64 bytes of "
               "[A-Za-z0-9_.:-]");
    name[SLUICE_TENANT_NAME_MAX + 1] = 'c'; /* 4095 bytes: the message stays short */
    expect_set(p, name, &tc, SLUICE_EINVAL,
               "tenant \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": name is 4095 bytes; must be 1..64 bytes of "
               "[A-Za-z0-9_.:-]");
    expect_set(p, "has space", &tc, SLUICE_EINVAL,
               "tenant \"has?space\": name has byte 0x20 at 3, outside [A-Za-z0-9_.:-]");
    expect_set(p, "tab\tname", &tc, SLUICE_EINVAL,
               "tenant \"tab?name\": name has byte 0x09 at 3, outside [A-Za-z0-9_.:-]");
    expect_set(p, "\xff", &tc, SLUICE_EINVAL,
               "tenant \"?\": name has byte 0xff at 0, outside [A-Za-z0-9_.:-]");
    expect_set(p, "slash/", &tc, SLUICE_EINVAL,
               "tenant \"slash?\": name has byte 0x2f at 5, outside [A-Za-z0-9_.:-]");
    /* unset names it the same way. */
    char err[256];
    assert_int_equal(sluice_pool_tenant_unset(p, "has space", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "tenant \"has?space\": name has byte 0x20 at 3, outside [A-Za-z0-9_.:-]");
    assert_int_equal(sluice_pool_tenant_unset(p, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "tenant name: NULL; must be 1..64 bytes of [A-Za-z0-9_.:-]");
    assert_int_equal(sluice_pool_tenant_unset(p, "never", err, sizeof err), SLUICE_ENOENT);
    assert_string_equal(err, "tenant \"never\": not set by name in pool tenants");
    sluice_pool_destroy(p);
}

/* Each field of sluice_tenant_config at its extremes: weight 0 (= 1) and
 * the maximum pass, one past and UINT_MAX are named; the overflow enum's
 * count, -1 and INT_MAX are named; queued_limit and running_limit take
 * any value (0 = none, SIZE_MAX / UINT_MAX = as good as none), strict any. */
static void test_config_field_extremes(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("tenants", SLUICE_QUEUE_FAIR);
    sluice_tenant_config tc = {.weight = 0};
    expect_set(p, "gold", &tc, SLUICE_OK, "");
    tc.weight = SLUICE_TENANT_WEIGHT_MAX;
    expect_set(p, "gold", &tc, SLUICE_OK, "");
    tc.weight = SLUICE_TENANT_WEIGHT_MAX + 1;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": weight 10001 is out of range 0..10000 (0 means 1)");
    tc.weight = UINT_MAX;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": weight 4294967295 is out of range 0..10000 (0 means 1)");
    tc.weight = 1;

    tc.overflow = SLUICE_TENANT_OVERFLOW_COUNT_;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": overflow 2 is not a tenant overflow (reject or drop_oldest)");
    tc.overflow = (sluice_tenant_overflow)-1;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": overflow -1 is not a tenant overflow (reject or drop_oldest)");
    tc.overflow = (sluice_tenant_overflow)INT_MAX;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": overflow 2147483647 is not a tenant overflow (reject or drop_oldest)");
    /* Both wrong: the weight is named first. */
    tc.weight = SLUICE_TENANT_WEIGHT_MAX + 1;
    expect_set(p, "gold", &tc, SLUICE_EINVAL,
               "tenant \"gold\": weight 10001 is out of range 0..10000 (0 means 1)");
    tc.weight = 1;
    tc.overflow = SLUICE_TENANT_OVERFLOW_DROP_OLDEST;
    expect_set(p, "gold", &tc, SLUICE_OK, "");

    tc.queued_limit = SIZE_MAX;
    tc.running_limit = UINT_MAX;
    tc.strict = true;
    expect_set(p, "gold", &tc, SLUICE_OK, "");
    tc.queued_limit = 0;
    tc.running_limit = 0; /* strict with no running limit: nothing to hold */
    expect_set(p, "gold", &tc, SLUICE_OK, "");
    sluice_tenant *h = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, "gold", &h), SLUICE_OK);
    sluice_tenant_stats ts;
    assert_int_equal(sluice_tenant_stats_get(h, &ts), SLUICE_OK);
    assert_int_equal(ts.config.overflow,
                     SLUICE_TENANT_OVERFLOW_DROP_OLDEST); /* the refusals changed nothing */
    assert_true(ts.config.strict);
    sluice_tenant_release(h);
    sluice_pool_destroy(p);
}

/* The arguments and the pool's state: NULL pool and cfg, a FIFO pool, a
 * draining pool - each message names the tenant, then what is wrong. */
static void test_arguments_and_state(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("tenants", SLUICE_QUEUE_FAIR);
    sluice_pool *fifo = make_pool("plain", SLUICE_QUEUE_FIFO);
    sluice_tenant_config tc = {.weight = 2};
    expect_set(NULL, "gold", &tc, SLUICE_EINVAL, "tenant \"gold\": pool is NULL");
    expect_set(p, "gold", NULL, SLUICE_EINVAL, "tenant \"gold\": cfg is NULL");
    expect_set(fifo, "gold", &tc, SLUICE_ENOTSUP,
               "tenant \"gold\": pool plain is not fair; tenants need queue_discipline fair");
    expect_default(NULL, &tc, SLUICE_EINVAL, "tenants' default: pool is NULL");
    expect_default(p, NULL, SLUICE_EINVAL, "tenants' default: cfg is NULL");
    expect_default(fifo, &tc, SLUICE_ENOTSUP,
                   "tenants' default: pool plain is not fair; tenants need queue_discipline fair");
    char err[256];
    assert_int_equal(sluice_pool_tenant_unset(fifo, "gold", err, sizeof err), SLUICE_ENOTSUP);
    assert_string_equal(err, "tenant \"gold\": pool plain is not fair; tenants need queue_discipline fair");

    /* default_set's fields, at the same extremes. */
    tc.weight = SLUICE_TENANT_WEIGHT_MAX + 1;
    expect_default(p, &tc, SLUICE_EINVAL,
                   "tenants' default: weight 10001 is out of range 0..10000 (0 means 1)");
    tc.weight = 0;
    tc.overflow = SLUICE_TENANT_OVERFLOW_COUNT_;
    expect_default(p, &tc, SLUICE_EINVAL,
                   "tenants' default: overflow 2 is not a tenant overflow (reject or drop_oldest)");
    tc.overflow = SLUICE_TENANT_OVERFLOW_REJECT;
    expect_default(p, &tc, SLUICE_OK, "");

    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    expect_set(p, "gold", &tc, SLUICE_ECLOSED, "tenant \"gold\": pool tenants is draining");
    expect_default(p, &tc, SLUICE_ECLOSED, "tenants' default: pool tenants is draining");
    assert_int_equal(sluice_pool_tenant_unset(p, "gold", err, sizeof err), SLUICE_ECLOSED);
    assert_string_equal(err, "tenant \"gold\": pool tenants is draining");
    sluice_pool_destroy(p);
    sluice_pool_destroy(fifo);
}

/* The weight `name` has as a configured tenant, or 0 when it is not set
 * by name. */
static unsigned configured_weight(sluice_pool *p, const char *name)
{
    sluice_tenant_stats st[16];
    size_t n = sluice_pool_tenants_get(p, st, 16);
    for (size_t i = 0; i < n && i < 16; i++) {
        if (strcmp(st[i].name, name) == 0) {
            return st[i].configured ? st[i].config.weight : 0;
        }
    }
    return 0;
}

/* sluice_pool_tenants_apply: its arguments at their extremes, all or
 * nothing (a refusal at the last change leaves the earlier ones unmade),
 * the last change to a name wins, an unset of a name never set is
 * skipped, *failed names the change, and a draining pool changes nothing. */
static void test_tenants_apply(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("tenants", SLUICE_QUEUE_FAIR);
    sluice_pool *fifo = make_pool("plain", SLUICE_QUEUE_FIFO);
    sluice_tenant_config w2 = {.weight = 2}, w3 = {.weight = 3},
                         bad = {.weight = SLUICE_TENANT_WEIGHT_MAX + 1};
    char err[256];
    size_t failed = 42;
    assert_int_equal(sluice_pool_tenants_apply(NULL, &w2, NULL, 0, &failed, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "tenants: pool is NULL");
    assert_int_equal(sluice_pool_tenants_apply(p, NULL, NULL, 3, &failed, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "tenants: changes is NULL with n = 3");
    /* Nothing to do is OK, with or without the optional outputs. */
    assert_int_equal(sluice_pool_tenants_apply(p, NULL, NULL, 0, &failed, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    assert_int_equal(sluice_pool_tenants_apply(p, NULL, NULL, 0, NULL, NULL, 0), SLUICE_OK);
    sluice_tenant_change one[] = {{"gold", &w2}};
    assert_int_equal(sluice_pool_tenants_apply(fifo, NULL, one, 1, &failed, err, sizeof err), SLUICE_ENOTSUP);
    assert_int_equal(failed, 0);
    assert_string_equal(err, "tenant \"gold\": pool plain is not fair; tenants need queue_discipline fair");

    /* All or nothing: the third change is refused, the first two are not made. */
    sluice_tenant_change three[] = {{"gold", &w2}, {"silver", &w3}, {"bronze", &bad}};
    assert_int_equal(sluice_pool_tenants_apply(p, &w3, three, 3, &failed, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(failed, 2);
    assert_string_equal(err, "tenant \"bronze\": weight 10001 is out of range 0..10000 (0 means 1)");
    assert_int_equal(configured_weight(p, "gold"), 0);
    assert_int_equal(configured_weight(p, "silver"), 0);
    /* A bad default is SLUICE_TENANTS_DEFAULT, and nothing else is made. */
    assert_int_equal(sluice_pool_tenants_apply(p, &bad, three, 2, &failed, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(failed, SLUICE_TENANTS_DEFAULT);
    assert_int_equal(configured_weight(p, "gold"), 0);

    /* The last change to a name wins; an unset of a name never set is
     * skipped; failed may be NULL. */
    sluice_tenant_change many[] = {
        {"gold", &w2}, {"silver", &w2}, {"gold", &w3}, {"silver", NULL}, {"never", NULL}};
    assert_int_equal(sluice_pool_tenants_apply(p, NULL, many, 5, NULL, err, sizeof err), SLUICE_OK);
    assert_int_equal(configured_weight(p, "gold"), 3);
    assert_int_equal(configured_weight(p, "silver"), 0);

    /* Draining: nothing changes, and the first change is the subject. */
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_tenant_change unset_gold[] = {{"gold", NULL}, {"tin", &w2}};
    assert_int_equal(sluice_pool_tenants_apply(p, NULL, unset_gold, 2, &failed, err, sizeof err),
                     SLUICE_ECLOSED);
    assert_int_equal(failed, 0);
    assert_string_equal(err, "tenant \"gold\": pool tenants is draining");
    assert_int_equal(configured_weight(p, "gold"), 3);
    sluice_pool_destroy(p);
    sluice_pool_destroy(fifo);
}

/* Pool create's fair.tenant_default names its path. */
static void test_pool_default(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "tenants";
    pc.workers = 1;
    pc.queue_capacity = 4;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.tenant_default.weight = UINT_MAX;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "fair.tenant_default.weight: 4294967295 is out of range 0..10000 (0 means 1)");
    pc.fair.tenant_default.weight = 0;
    pc.fair.tenant_default.overflow = (sluice_tenant_overflow)-1;
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err,
                        "fair.tenant_default.overflow: -1 is not a tenant overflow (reject or drop_oldest)");
    assert_null(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_extremes),       cmocka_unit_test(test_config_field_extremes),
        cmocka_unit_test(test_arguments_and_state), cmocka_unit_test(test_pool_default),
        cmocka_unit_test(test_tenants_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
