/*
 * tests/admin/test_console.c - the web console at / of the admin server,
 * over real loopback sockets: the page is served whole (the embedded bytes
 * of src/admin/console/console.html), as HTML, with a content security
 * policy; it loads nothing from anywhere else; the endpoints it polls
 * answer; HEAD, other methods and a query string behave as for any
 * endpoint. What the page does in a browser is tests/cli/console_browser.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin_fixture.h"
#include "admin/console.h"
#include "admin/http_client.h"
#include "sluice/admin.h"

static sluice_admin *start_admin_token(const char *token)
{
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.token = token;
    return start_admin(&cfg);
}

static void test_page_served_whole(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    size_t len = 0;
    const char *page = sluice__console_page(&len);
    assert_true(len > 1000);
    assert_int_equal(strlen(page), len); /* NUL-terminated, no NUL inside */

    http_reply r = http_do(port, "GET", "/", NULL);
    assert_int_equal(r.status, 200);
    char hv[512];
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_string_equal(hv, "text/html; charset=utf-8");
    assert_non_null(http_header(&r, "Content-Security-Policy", hv, sizeof hv));
    assert_non_null(strstr(hv, "default-src 'none'"));
    assert_non_null(strstr(hv, "connect-src 'self'"));
    assert_non_null(http_header(&r, "Content-Length", hv, sizeof hv));
    assert_int_equal(strtoull(hv, NULL, 10), len);
    assert_int_equal(r.raw_len - (size_t)(r.body - r.raw), len);
    assert_memory_equal(r.body, page, len);
    http_free(&r);

    /* A query string is ignored, as elsewhere. */
    assert_int_equal(http_status(port, "GET", "/?token=x", NULL), 200);
    r = http_do(port, "HEAD", "/", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    http_free(&r);
    r = http_do(port, "POST", "/", "Content-Length: 0\r\n");
    assert_int_equal(r.status, 405); /* read-only */
    http_free(&r);
    assert_int_equal(http_status(port, "GET", "/index.html", NULL), 404);
    sluice_admin_stop(a);
}

/* Self-contained: no script, style, font or image from another origin. */
static void test_page_loads_nothing_else(void **state)
{
    (void)state;
    const char *page = sluice__console_page(NULL);
    static const char *const outside[] = {"http://",  "https://", "//cdn",       "src=\"/",
                                          "href=\"/", "@import",  "<script src", "<link rel=\"stylesheet\""};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        if (strstr(page, outside[i])) {
            fail_msg("the console page refers to something outside itself: '%s'", outside[i]);
        }
    }
}

/* The endpoints the page polls exist and answer in the shape it reads. */
static void test_polled_endpoints_answer(void **state)
{
    (void)state;
    const char *page = sluice__console_page(NULL);
    assert_non_null(strstr(page, "get(\"/debug/pools\")"));
    assert_non_null(strstr(page, "get(\"/metrics\")"));
    assert_non_null(strstr(page, "get(\"/debug/pools/stacks\")"));

    sluice_admin *a = start_admin(NULL);
    sluice_pool *pool = make_pool("ingest", 2, 16, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(sluice_admin_add_pool(a, pool), SLUICE_OK);
    unsigned port = sluice_admin_port(a);

    http_reply r = http_do(port, "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 200);
    static const char *const fields[] = {
        "\"name\":\"ingest\"", "\"running\":",   "\"capacity\":", "\"queue_depth\":", "\"queue_capacity\":",
        "\"draining\":",       "\"completed\":", "\"failed\":",   "\"panicked\":",    "\"dropped\":",
        "\"shed\":",           "\"rejected\":",  "\"workers\":[", "\"ready\":"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!strstr(r.body, fields[i])) {
            fail_msg("/debug/pools lacks %s, which the console reads:\n%s", fields[i], r.body);
        }
    }
    http_free(&r);
    r = http_do(port, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "pool_task_duration_seconds_bucket{name=\"ingest\",le=\""));
    assert_non_null(strstr(r.body, "pool_submit_duration_seconds_bucket{name=\"ingest\",le=\""));
    http_free(&r);
    r = http_do(port, "GET", "/debug/pools/stacks", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "pool ingest: "));
    http_free(&r);

    assert_int_equal(sluice_admin_remove_pool(a, pool), SLUICE_OK);
    sluice_pool_destroy(pool);
    sluice_admin_stop(a);
}

/* With a token: the page (static, no data) is served to anyone, so a
 * browser can open it and be asked for the token; the data it polls from
 * /debug/pools answers 401 without the token and 200 with it. */
static void test_token(void **state)
{
    (void)state;
    sluice_admin *a = start_admin_token("c0nsole-T0ken");
    sluice_pool *pool = make_pool("secretpool", 1, 4, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(sluice_admin_add_pool(a, pool), SLUICE_OK);
    unsigned port = sluice_admin_port(a);

    http_reply r = http_do(port, "GET", "/", NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "secretpool")); /* the page carries no data */
    http_free(&r);
    r = http_do(port, "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 401);
    assert_null(strstr(r.body, "secretpool"));
    http_free(&r);
    assert_int_equal(http_status(port, "GET", "/debug/pools", "Authorization: Bearer wrong\r\n"), 401);
    assert_int_equal(http_status(port, "GET", "/debug/pools/stacks", NULL), 401);
    r = http_do(port, "GET", "/debug/pools", "Authorization: Bearer c0nsole-T0ken\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"name\":\"secretpool\""));
    http_free(&r);
    /* The page asks for the token on a 401 and sends it as a bearer token. */
    const char *page = sluice__console_page(NULL);
    assert_non_null(strstr(page, "r.status === 401"));
    assert_non_null(strstr(page, "Authorization: \"Bearer \" + token"));

    assert_int_equal(sluice_admin_remove_pool(a, pool), SLUICE_OK);
    sluice_pool_destroy(pool);
    sluice_admin_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_served_whole),
        cmocka_unit_test(test_page_loads_nothing_else),
        cmocka_unit_test(test_polled_endpoints_answer),
        cmocka_unit_test(test_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
