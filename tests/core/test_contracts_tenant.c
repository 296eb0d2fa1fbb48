/*
 * tests/core/test_contracts_tenant.c - the promises of sluice/tenant.h
 * probed at their extremes, read from the header alone: names at
 * SLUICE_TENANT_NAME_MAX bytes and one past, the empty name, a character
 * outside the charset; weights at SLUICE_TENANT_WEIGHT_MAX and one past;
 * errbuf "always NUL-terminated when given", also on success and with
 * errlen 1; NULL arguments; a count past cap; every setter refused with
 * SLUICE_ECLOSED once the pool is draining.
 *
 * Single-threaded apart from the pool's own workers; nothing waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/pool.h"
#include "sluice/tenant.h"

static sluice_pool *make_fair(void)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "tenants";
    pc.workers = 1;
    pc.queue_capacity = 16;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
}

/* True when buf[0..len) holds a NUL. */
static bool terminated(const char *buf, size_t len)
{
    return memchr(buf, '\0', len) != NULL;
}

static void test_tenant_names_and_weights(void **state)
{
    (void)state;
    sluice_pool *p = make_fair();
    char name[SLUICE_TENANT_NAME_MAX + 2], err[96];
    memset(name, 'a', SLUICE_TENANT_NAME_MAX);
    name[SLUICE_TENANT_NAME_MAX] = '\0';
    sluice_tenant_config tc = {.weight = SLUICE_TENANT_WEIGHT_MAX};
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_pool_tenant_set(p, name, &tc, err, sizeof err), SLUICE_OK);
    assert_true(terminated(err, sizeof err)); /* on success too */
    sluice_tenant *h = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, name, &h), SLUICE_OK);
    assert_string_equal(sluice_tenant_name(h), name);
    sluice_tenant_stats ts;
    assert_int_equal(sluice_tenant_stats_get(h, &ts), SLUICE_OK);
    assert_string_equal(ts.name, name);
    assert_true(ts.configured);
    assert_int_equal(ts.config.weight, SLUICE_TENANT_WEIGHT_MAX);
    assert_int_equal(sluice_tenant_stats_get(h, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_tenant_stats_get(NULL, &ts), SLUICE_EINVAL);
    sluice_tenant_release(h);

    /* One past the name limit, the empty name, a bad character, NULL. */
    name[SLUICE_TENANT_NAME_MAX] = 'a';
    name[SLUICE_TENANT_NAME_MAX + 1] = '\0';
    const char *bad[] = {name, "", "has space", "tab\tname", "slash/name", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(err, 'X', sizeof err);
        if (sluice_pool_tenant_set(p, bad[i], &tc, err, sizeof err) != SLUICE_EINVAL) {
            fail_msg("tenant_set accepted the bad name #%zu", i);
        }
        assert_true(terminated(err, sizeof err));
        assert_non_null(strstr(err, "tenant")); /* the message names the argument */
        h = (sluice_tenant *)p;                 /* a sentinel: untouched on error */
        assert_int_equal(sluice_pool_tenant_acquire(p, bad[i], &h), SLUICE_EINVAL);
    }
    assert_int_equal(sluice_pool_tenant_acquire(p, "fine", NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_tenant_acquire(NULL, "fine", &h), SLUICE_EINVAL);

    /* Weight one past the maximum; an unknown overflow; errlen 1. */
    tc.weight = SLUICE_TENANT_WEIGHT_MAX + 1;
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &tc, err, sizeof err), SLUICE_EINVAL);
    assert_true(terminated(err, sizeof err));
    assert_non_null(strstr(err, "weight"));
    err[0] = 'X';
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &tc, err, 1), SLUICE_EINVAL);
    assert_int_equal(err[0], '\0');
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &tc, NULL, 0), SLUICE_EINVAL);
    tc.weight = 0; /* = 1 */
    tc.overflow = (sluice_tenant_overflow)999;
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &tc, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overflow"));
    tc.overflow = 0;
    assert_int_equal(sluice_pool_tenant_set(p, "heavy", &tc, NULL, 0), SLUICE_OK);
    sluice_tenant *hh = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, "heavy", &hh), SLUICE_OK);
    assert_int_equal(sluice_tenant_stats_get(hh, &ts), SLUICE_OK);
    assert_int_equal(ts.config.weight, 1); /* "weight (never 0 here)" */
    sluice_tenant_release(hh);
    sluice_tenant_release(NULL); /* a no-op */

    /* The count past cap, and cap 0 with no array. */
    assert_int_equal(sluice_pool_tenant_set(p, "third", &tc, NULL, 0), SLUICE_OK);
    size_t n = sluice_pool_tenants_get(p, NULL, 0);
    assert_true(n >= 3);
    sluice_tenant_stats one[1];
    assert_int_equal(sluice_pool_tenants_get(p, one, 1), n);
    assert_int_equal(sluice_pool_tenants_get(NULL, one, 1), 0);
    sluice_pool_destroy(p);
}

/* "SLUICE_ECLOSED once the pool is draining", for each setter. */
static void test_tenant_setters_after_drain(void **state)
{
    (void)state;
    sluice_pool *p = make_fair();
    sluice_tenant_config tc = {.weight = 2};
    assert_int_equal(sluice_pool_tenant_set(p, "early", &tc, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    char err[128];
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_pool_tenant_set(p, "late", &tc, err, sizeof err), SLUICE_ECLOSED);
    assert_true(terminated(err, sizeof err));
    assert_int_equal(sluice_pool_tenant_set(p, "early", &tc, NULL, 0), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_tenant_unset(p, "early", NULL, 0), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_tenant_default_set(p, &tc, NULL, 0), SLUICE_ECLOSED);
    /* Reading still works. */
    sluice_tenancy_stats ty;
    sluice_pool_tenancy_get(p, &ty);
    assert_true(ty.configured >= 1);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_names_and_weights),
        cmocka_unit_test(test_tenant_setters_after_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
