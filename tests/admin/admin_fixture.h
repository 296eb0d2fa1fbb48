/*
 * tests/admin/admin_fixture.h - what the admin tests share on top of the
 * HTTP client (http_client.h): a server on a free loopback port, a pool
 * to serve, and a body check that prints the reply it fails on.
 *
 * Include after <cmocka.h>: a failure here fails the calling test.
 */
#ifndef SLUICE_TEST_ADMIN_FIXTURE_H
#define SLUICE_TEST_ADMIN_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "admin/http_client.h"
#include "sluice/admin.h"
#include "sluice/pool.h"

/* Starts a server with `cfg` (NULL: the defaults) on 127.0.0.1 and a port
 * the system picks; the test fails, with the server's message, if it
 * cannot. cfg->address is overwritten. */
static inline sluice_admin *start_admin(sluice_admin_config *cfg)
{
    sluice_admin_config def;
    if (!cfg) {
        sluice_admin_config_init(&def);
        cfg = &def;
    }
    cfg->address = "127.0.0.1:0";
    sluice_admin *a = NULL;
    char err[256];
    if (sluice_admin_start(cfg, &a, err, sizeof err) != SLUICE_OK) {
        fail_msg("admin start: %s", err);
    }
    assert_true(sluice_admin_port(a) > 0);
    return a;
}

/* A pool named `name` with K workers, a queue of q and the overflow policy. */
static inline sluice_pool *make_pool(const char *name, unsigned k, size_t q, sluice_overflow ov)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = name;
    cfg.workers = k;
    cfg.queue_capacity = q;
    cfg.overflow = ov;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&cfg, &p, NULL, 0), SLUICE_OK);
    return p;
}

/* Fails the test, printing the whole reply, when the body lacks needle. */
static inline void expect_body_has(const http_reply *r, const char *needle)
{
    if (!strstr(r->body, needle)) {
        fprintf(stderr, "--- reply ---\n%s\n", r->raw);
        fail_msg("reply lacks '%s'", needle);
    }
}

/* GETs path (no extra headers) and fails the test unless the status is
 * `status` and the body contains `needle`. */
static inline void expect_get_has(unsigned port, const char *path, int status, const char *needle)
{
    http_reply r = http_do(port, "GET", path, NULL);
    assert_int_equal(r.status, status);
    expect_body_has(&r, needle);
    http_free(&r);
}

/* GETs path and fails the test unless the status is `status` and the body
 * is exactly `body`. */
static inline void expect_get_body(unsigned port, const char *path, int status, const char *body)
{
    http_reply r = http_do(port, "GET", path, NULL);
    assert_int_equal(r.status, status);
    assert_string_equal(r.body, body);
    http_free(&r);
}

#endif /* SLUICE_TEST_ADMIN_FIXTURE_H */
