/*
 * tests/admin/test_admin.c - the admin server over real sockets: status
 * codes and bodies of every endpoint, content negotiation, readiness
 * (draining, saturation on a fake clock), the synthetic pool check,
 * /debug/pools JSON, stacks, bad requests, the connection limit, and a
 * port already in use.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "sluice/tenant.h"

#include "admin/admin_fixture.h"
#include "admin/http_client.h"
#include "common/wait.h"
#include "admin/admin_internal.h"
#include "admin/route.h"
#include "sluice/admin.h"
#include "sluice/metrics.h"
#include "sluice/service.h"

/* ---- a gate task ------------------------------------------------------------- */

/* Exported so that dladdr can name it in /debug/pools/stacks. */
__attribute__((noinline, visibility("default"))) int gate_task(void *arg);
__attribute__((noinline, visibility("default"))) int gate_task(void *arg)
{
    return gate_pass(arg, false) ? 0 : 1;
}

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

/* A server whose readiness turns on saturation: a pool saturated for more
 * than 30 s of `fake` (started at 100 s) makes /health/ready 503. */
static sluice_admin *start_admin_saturation_30s(sluice_fake_clock *fake)
{
    sluice_fake_clock_init(fake, 100 * SLUICE_NS_PER_SEC);
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.clock = &fake->clock;
    cfg.saturation_threshold_ns = 30 * SLUICE_NS_PER_SEC;
    return start_admin(&cfg);
}

static void quiet_log(void *user, const char *line)
{
    (void)user;
    (void)line;
}

/* A service for a server to serve: no signal handlers, a quiet log. */
static sluice_service *make_service(void)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = quiet_log;
    sluice_service *svc = NULL;
    assert_int_equal(sluice_service_create(&sc, &svc, NULL, 0), SLUICE_OK);
    return svc;
}

/* Adds a pool of one worker and a queue of 4 to svc. */
static void add_small_pool(sluice_service *svc, const char *name)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 1;
    pc.queue_capacity = 4;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, NULL, NULL, 0), SLUICE_OK);
}

/* A server serving svc (cfg.service), health checks timed out after
 * health_timeout_ns (0: the default). */
static sluice_admin *start_admin_serving(sluice_service *svc, uint64_t health_timeout_ns)
{
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.service = svc;
    if (health_timeout_ns) {
        cfg.health_timeout_ns = health_timeout_ns;
    }
    return start_admin(&cfg);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_routes_and_errors(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    char hv[256];

    expect_get_body(port, "/health/live", 200, "live\n");

    expect_get_has(port, "/nope", 404, "/metrics");

    http_reply r = http_do(port, "POST", "/metrics", "Content-Length: 0\r\n");
    assert_int_equal(r.status, 405);
    assert_non_null(http_header(&r, "Allow", hv, sizeof hv));
    assert_string_equal(hv, "GET, HEAD");
    http_free(&r);

    assert_int_equal(http_status(port, "DELETE", "/health/ready", NULL), 405);

    assert_int_equal(http_status(port, "GET", "/metrics?x=1", NULL), 200); /* a query string is ignored */

    r = http_do(port, "GET", "/debug/../metrics", NULL);
    assert_true(r.status == 400 || r.status == 404);
    http_free(&r);

    /* Malformed request line: refused by libmicrohttpd, never a 200. */
    const char *garbage = "GARBAGE\r\n\r\n";
    r = http_raw(port, garbage, strlen(garbage));
    assert_true(r.status == 0 || (r.status >= 400 && r.status < 500));
    http_free(&r);
    const char *nohost = "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"; /* HTTP/1.1 needs Host */
    r = http_raw(port, nohost, strlen(nohost));
    assert_int_equal(r.status, 400);
    http_free(&r);

    /* Oversized headers: refused (4xx or closed), and the server lives on. */
    size_t big = 64 * 1024;
    char *huge = malloc(big + 256);
    int n = snprintf(huge, 256, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + n, 'a', big);
    strcpy(huge + n + big, "\r\nConnection: close\r\n\r\n");
    r = http_raw(port, huge, strlen(huge));
    assert_true(r.status == 0 || (r.status >= 400 && r.status < 500));
    http_free(&r);
    free(huge);
    assert_int_equal(http_status(port, "GET", "/health/live", NULL), 200);

    /* HEAD: headers, no body. */
    r = http_do(port, "HEAD", "/health/live", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    http_free(&r);

    sluice_admin_stop(a);
}

static int route(const char *method, const char *url, const char **path)
{
    const sluice__admin_route *r = NULL;
    int status = sluice__admin_route_find(method, url, url ? strlen(url) : 0, &r);
    *path = r ? r->path : NULL;
    return status;
}

/* The eviction's spare test, on a socket pair: a request head still
 * arriving is not waiting, a whole one is, and the peek leaves every byte
 * for the server to read. */
static void test_request_waiting_peek(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_false(sluice__admin_request_waiting(sv[1])); /* nothing yet: does not block */
    assert_false(sluice__admin_request_waiting(-1));
    const char *head = "GET /health/live HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(write(sv[0], head, strlen(head)), (ssize_t)strlen(head));
    assert_false(sluice__admin_request_waiting(sv[1])); /* trickling: no blank line */
    assert_int_equal(write(sv[0], "\r\n", 2), 2);
    assert_true(sluice__admin_request_waiting(sv[1]));
    assert_true(sluice__admin_request_waiting(sv[1])); /* peeking consumed nothing */
    char buf[128];
    ssize_t n = read(sv[1], buf, sizeof buf);
    assert_int_equal(n, (ssize_t)strlen(head) + 2);
    assert_memory_equal(buf, head, strlen(head));
    assert_false(sluice__admin_request_waiting(sv[1])); /* read by the server: no longer waiting */
    close(sv[0]);
    assert_false(sluice__admin_request_waiting(sv[1])); /* the peer gone, nothing unread */
    close(sv[1]);
}

static void test_route_function(void **state)
{
    (void)state;
    const char *ep;
    assert_int_equal(route("GET", "/metrics", &ep), 200);
    assert_string_equal(ep, "/metrics");
    assert_int_equal(route("HEAD", "/debug/pools/stacks?x", &ep), 200);
    assert_string_equal(ep, "/debug/pools/stacks");
    assert_int_equal(route("PUT", "/health/live", &ep), 405);
    assert_string_equal(ep, "/health/live"); /* the row, for its Allow header */
    assert_int_equal(route("PUT", "/elsewhere", &ep), 404);
    assert_null(ep);
    assert_int_equal(route("GET", "/metrics/", &ep), 404);
    assert_int_equal(route("GET", "/debug", &ep), 404);
    assert_int_equal(route("GET", "/debug/pools/stack", &ep), 404); /* no prefix falls through */
    assert_int_equal(route("GET", "/debug/pools/stacksx", &ep), 404);
    assert_int_equal(route("GET", "metrics", &ep), 400);
    assert_int_equal(route("GET", "/a/../metrics", &ep), 400);
    assert_int_equal(route("GET", "/..", &ep), 400);
    assert_int_equal(route("GET", "/..?x", &ep), 400);
    assert_int_equal(route("GET", "/a..b", &ep), 404);
    assert_int_equal(route("GET", "/me\ttrics", &ep), 400);
    assert_int_equal(route("GET", NULL, &ep), 400);
    assert_int_equal(route(NULL, "/metrics", &ep), 400);
    assert_int_equal(route("GET", "", &ep), 400);
    /* A NUL inside the target is a control byte, wherever it is. */
    const sluice__admin_route *r = (const sluice__admin_route *)1;
    assert_int_equal(sluice__admin_route_find("GET", "/health/live\0x", 14, &r), 400);
    assert_null(r);
    assert_int_equal(sluice__admin_route_find("GET", "/\0/../metrics", 14, &r), 400);
    assert_int_equal(sluice__admin_route_find("GET", "/metrics?a\0b", 12, &r), 400);
    assert_int_equal(sluice__admin_route_find("GET", "/metrics?a", 10, &r), 200);
    char *longurl = malloc(5000);
    longurl[0] = '/';
    memset(longurl + 1, 'a', 4998);
    longurl[4999] = '\0';
    assert_int_equal(route("GET", longurl, &ep), 400);
    longurl[SLUICE__ADMIN_URL_MAX] = '\0'; /* the longest routed path: not found, not malformed */
    assert_int_equal(route("GET", longurl, &ep), 404);
    free(longurl);
}

/* Every row is listed in the 404 text and in docs/metrics.md's endpoint
 * table, in table order, and the docs list no endpoint the table lacks. */
static void test_routes_match_docs(void **state)
{
    (void)state;
    FILE *f = fopen(SLUICE_SOURCE_DIR "/docs/metrics.md", "r");
    assert_non_null(f);
    char line[4096];
    size_t next = 0; /* the row the docs should list next */
    int doc_rows = 0;
    while (fgets(line, sizeof line, f)) {
        char method[16], path[256];
        if (sscanf(line, "| `%15[A-Z] %255[^`]` |", method, path) != 2 || path[0] != '/') {
            continue;
        }
        doc_rows++;
        const sluice__admin_route *r = sluice__admin_route_at(next++);
        if (!r || strcmp(r->path, path) != 0) {
            fail_msg("docs/metrics.md lists `%s %s` where the route table has %s", method, path,
                     r ? r->path : "no more rows");
        }
        if (!strstr(sluice__admin_methods_text(r->methods), method)) {
            fail_msg("docs/metrics.md: %s %s, but the row allows %s", method, path,
                     sluice__admin_methods_text(r->methods));
        }
    }
    fclose(f);
    if (sluice__admin_route_at(next)) {
        fail_msg("docs/metrics.md does not list %s (and maybe later rows)",
                 sluice__admin_route_at(next)->path);
    }
    assert_true(doc_rows >= 6);

    sluice_admin *a = start_admin(NULL);
    http_reply rep = http_do(sluice_admin_port(a), "GET", "/nope", NULL);
    assert_int_equal(rep.status, 404);
    const char *p = rep.body;
    const sluice__admin_route *r;
    for (size_t i = 0; (r = sluice__admin_route_at(i)) != NULL; i++) {
        char want[300];
        snprintf(want, sizeof want, " %s", r->path);
        const char *at = strstr(p, want);
        if (!at) {
            fail_msg("404 text lacks %s (in order): %s", r->path, rep.body);
        }
        p = at + strlen(want);
    }
    http_free(&rep);
    sluice_admin_stop(a);
}

static void test_metrics_endpoint(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    sluice_pool *p = make_pool("web", 2, 8, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_EBUSY);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, ok_task, NULL), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    char hv[256];

    http_reply r = http_do(port, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_string_equal(hv, "text/plain; version=0.0.4; charset=utf-8");
    expect_body_has(&r, "\npool_completed_total{name=\"web\"} 5\n");
    expect_body_has(&r, "# TYPE pool_completed_total counter\n");
    http_free(&r);

    r = http_do(port, "GET", "/metrics",
                "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_non_null(strstr(hv, "application/openmetrics-text"));
    expect_body_has(&r, "# TYPE pool_completed counter\n");
    expect_body_has(&r, "\n# EOF\n");
    http_free(&r);

    assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_OK);
    assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_ENOENT);
    r = http_do(port, "GET", "/metrics", NULL);
    assert_null(strstr(r.body, "name=\"web\""));
    http_free(&r);
    sluice_admin_stop(a);
    sluice_pool_destroy(p);
}

/* The server's registry already holds a pool under the name: the same
 * pool is served and not exported twice (remove_pool leaves it there);
 * another pool of that name is refused with EBUSY and a message naming
 * the clash (before, it was served while /metrics showed the other
 * pool's figures under its name); once the name is free, it is served. */
static void test_registry_pool_clash(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.metrics = reg;
    sluice_admin *a = start_admin(&cfg);
    unsigned port = sluice_admin_port(a);
    sluice_pool *first = make_pool("web", 1, 8, SLUICE_OVERFLOW_BLOCK);
    sluice_pool *other = make_pool("web", 1, 16, SLUICE_OVERFLOW_BLOCK); /* told apart by the capacity */

    /* The query itself. */
    const sluice_pool *held = (const sluice_pool *)1;
    assert_int_equal(sluice_metrics_pool_named(NULL, "web", &held), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_pool_named(reg, NULL, &held), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_pool_named(reg, "web", NULL), SLUICE_EINVAL);
    assert_true(held == (const sluice_pool *)1);
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_ENOENT);
    assert_null(held);
    assert_int_equal(sluice_metrics_add_pool(reg, first), SLUICE_OK);
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_OK);
    assert_true(held == first);
    assert_int_equal(sluice_metrics_pool_named(reg, "", &held), SLUICE_ENOENT);
    assert_int_equal(sluice_metrics_pool_named(reg, "we", &held), SLUICE_ENOENT);
    assert_int_equal(sluice_metrics_pool_named(reg, "web2", &held), SLUICE_ENOENT);

    /* The same pool: served, not exported twice, left in the registry. */
    char why[256] = "junk";
    assert_int_equal(sluice_admin_add_pool_ex(a, first, why, sizeof why), SLUICE_OK);
    assert_string_equal(why, "");
    expect_get_has(port, "/health/pools", 200, "web ok");
    assert_int_equal(sluice_admin_add_pool_ex(a, first, why, sizeof why), SLUICE_EBUSY);
    assert_string_equal(why, "pool \"web\": already served by this server");
    assert_int_equal(sluice_admin_remove_pool(a, first), SLUICE_OK);
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_OK);
    assert_true(held == first);

    /* Another pool of that name: refused, nothing changed. */
    assert_int_equal(sluice_admin_add_pool_ex(a, other, why, sizeof why), SLUICE_EBUSY);
    if (!strstr(why, "pool \"web\": the metrics registry already exports another pool named \"web\"")) {
        fail_msg("refusal says: %s", why);
    }
    assert_int_equal(sluice_admin_add_pool(a, other), SLUICE_EBUSY);
    assert_int_equal(sluice_admin_add_pool_ex(a, other, NULL, 0), SLUICE_EBUSY);
    assert_int_equal(sluice_admin_remove_pool(a, other), SLUICE_ENOENT);
    assert_int_equal(sluice_admin_set_pool_readiness(a, other, 1.0), SLUICE_ENOENT);
    expect_get_has(port, "/health/pools", 200, "ok: no pools");
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_OK);
    assert_true(held == first);
    expect_get_has(port, "/metrics", 200, "\npool_queue_capacity{name=\"web\"} 8\n");

    /* The name freed: the other pool is served and exported, and taken
     * out of the registry again with remove_pool. */
    assert_int_equal(sluice_metrics_remove_pool(reg, first), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool_ex(a, other, why, sizeof why), SLUICE_OK);
    assert_string_equal(why, "");
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_OK);
    assert_true(held == other);
    expect_get_has(port, "/metrics", 200, "\npool_queue_capacity{name=\"web\"} 16\n");
    assert_int_equal(sluice_admin_add_pool_ex(a, first, why, sizeof why), SLUICE_EBUSY);
    assert_string_equal(why, "pool \"web\": this server already serves another pool named \"web\"");
    assert_int_equal(sluice_admin_add_pool_ex(NULL, first, why, sizeof why), SLUICE_EINVAL);
    assert_string_equal(why, "admin is NULL");
    assert_int_equal(sluice_admin_add_pool_ex(a, NULL, why, sizeof why), SLUICE_EINVAL);
    assert_string_equal(why, "pool is NULL");
    assert_int_equal(sluice_admin_remove_pool(a, other), SLUICE_OK);
    assert_int_equal(sluice_metrics_pool_named(reg, "web", &held), SLUICE_ENOENT);

    sluice_admin_stop(a);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(first);
    sluice_pool_destroy(other);
}

static void test_ready(void **state)
{
    (void)state;
    sluice_fake_clock fake;
    sluice_admin *a = start_admin_saturation_30s(&fake);
    unsigned port = sluice_admin_port(a);
    sluice_pool *busy = make_pool("busy", 1, 1, SLUICE_OVERFLOW_REJECT);
    sluice_pool *calm = make_pool("calm", 1, 4, SLUICE_OVERFLOW_REJECT);
    assert_int_equal(sluice_admin_add_pool(a, busy), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, calm), SLUICE_OK);

    expect_get_body(port, "/health/ready", 200, "busy ok\ncalm ok\n");

    /* Draining: 503 whatever the pools. */
    sluice_admin_ready_handler(a, false);
    expect_get_body(port, "/health/ready", 503, "not ready: draining\nbusy ok\ncalm ok\n");
    sluice_admin_set_ready(a, true);

    /* Saturate `busy`: one running, queue (1) full. */
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(busy, gate_task, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    assert_int_equal(sluice_pool_submit(busy, ok_task, NULL), SLUICE_OK);
    expect_get_has(port, "/health/ready", 200, "busy saturated for 0.0s (under threshold 30.0s)\n");
    sluice_fake_clock_advance(&fake, 31 * SLUICE_NS_PER_SEC);
    expect_get_has(port, "/health/ready", 503, "busy saturated for 31.0s (over threshold 30.0s)\ncalm ok\n");

    /* Unsaturated again: ready, and the clock of saturation restarts. */
    gate_open(&g);
    assert_int_equal(sluice_pool_drain(busy, 0, NULL), SLUICE_OK);
    expect_get_body(port, "/health/ready", 200, "busy ok\ncalm ok\n");

    sluice_admin_stop(a); /* forgets the pools */
    sluice_pool_destroy(busy);
    sluice_pool_destroy(calm);
}

/* Readiness weights: a pool at 0 never gates; two at 0.5 gate together. */
static void test_ready_weights(void **state)
{
    (void)state;
    sluice_fake_clock fake;
    sluice_admin *a = start_admin_saturation_30s(&fake);
    unsigned port = sluice_admin_port(a);
    sluice_pool *side = make_pool("side", 1, 1, SLUICE_OVERFLOW_REJECT);
    sluice_pool *h1 = make_pool("h1", 1, 1, SLUICE_OVERFLOW_REJECT);
    sluice_pool *h2 = make_pool("h2", 1, 1, SLUICE_OVERFLOW_REJECT);
    sluice_pool *other = make_pool("other", 1, 1, SLUICE_OVERFLOW_REJECT);
    assert_int_equal(sluice_admin_add_pool(a, side), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, h1), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, h2), SLUICE_OK);

    /* Bad weights and pools the server does not serve. */
    assert_int_equal(sluice_admin_set_pool_readiness(a, side, -0.001), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, side, 1.001), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, side, 0.0 / 0.0), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(NULL, side, 0.5), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, NULL, 0.5), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, other, 0.5), SLUICE_ENOENT);
    /* The extremes are accepted. */
    assert_int_equal(sluice_admin_set_pool_readiness(a, side, 1.0), SLUICE_OK);
    assert_int_equal(sluice_admin_set_pool_readiness(a, side, 0.0), SLUICE_OK);
    assert_int_equal(sluice_admin_set_pool_readiness(a, h1, 0.5), SLUICE_OK);
    assert_int_equal(sluice_admin_set_pool_readiness(a, h2, 0.5), SLUICE_OK);

    expect_get_body(port, "/health/ready", 200,
                    "side ok, not gating: readiness weight 0\nh1 ok, readiness weight 0.500\n"
                    "h2 ok, readiness weight 0.500\n");

    /* Saturate each: one running, the queue (1) full. */
    gate g;
    gate_init(&g);
    sluice_pool *all[] = {side, h1, h2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(all[i], gate_task, &g), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(&g, 3);
    assert_int_equal(sluice_pool_submit(side, ok_task, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(h1, ok_task, NULL), SLUICE_OK);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 200); /* saturation is seen from here */
    sluice_fake_clock_advance(&fake, 31 * SLUICE_NS_PER_SEC);
    /* side (0) and h1 (0.5) over the threshold: 0.5 < 1, still ready. */
    http_reply r = http_do(port, "GET", "/health/ready", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "side saturated for 31.0s (over threshold 30.0s, not gating: readiness weight 0)\n");
    expect_body_has(&r, "h1 saturated for 31.0s (over threshold 30.0s, readiness weight 0.500)\n");
    http_free(&r);
    /* h2 joins: 0.5 + 0.5 reaches 1 once it, too, is past the threshold. */
    assert_int_equal(sluice_pool_submit(h2, ok_task, NULL), SLUICE_OK);
    expect_get_has(port, "/health/ready", 200,
                   "h2 saturated for 0.0s (under threshold 30.0s, readiness weight 0.500)\n");
    sluice_fake_clock_advance(&fake, 31 * SLUICE_NS_PER_SEC);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 503);
    /* Back to the default weight: h1 alone is enough again. */
    assert_int_equal(sluice_admin_set_pool_readiness(a, h2, 0.0), SLUICE_OK);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 200);
    assert_int_equal(sluice_admin_set_pool_readiness(a, h1, 1.0), SLUICE_OK);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 503);

    gate_open(&g);
    sluice_admin_stop(a);
    for (int i = 0; i < 3; i++) {
        sluice_pool_destroy(all[i]);
    }
    sluice_pool_destroy(other);
}

static void test_health_pools_and_debug(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    /* How long /health/pools waits for the stuck pool's probe (its
     * request takes that long), and the bound within which the others'
     * probes must run: each starts a worker thread first, which on a
     * loaded machine (TSan, -j2) can take longer than the 300 ms this was. */
    cfg.health_timeout_ns = 2 * SLUICE_NS_PER_SEC;
    sluice_admin *a = start_admin(&cfg);
    unsigned port = sluice_admin_port(a);
    sluice_pool *good = make_pool("good", 2, 8, SLUICE_OVERFLOW_BLOCK);
    sluice_pool *stuck = make_pool("stuck", 1, 8, SLUICE_OVERFLOW_BLOCK);
    sluice_pool *full = make_pool("full", 1, 1, SLUICE_OVERFLOW_DROP_OLDEST);
    assert_int_equal(sluice_admin_add_pool(a, good), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, stuck), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, full), SLUICE_OK);

    expect_get_body(port, "/health/pools", 200, "good ok\nstuck ok\nfull ok\n");

    gate g;
    gate_init(&g);
    sluice_submit_opts o = {.label = "downstream-call"};
    assert_int_equal(sluice_pool_submit_ex(stuck, gate_task, &g, &o), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(full, gate_task, &g, &o), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 2);
    assert_int_equal(sluice_pool_submit(full, ok_task, NULL), SLUICE_OK); /* queue (1) now full */

    expect_get_body(port, "/health/pools", 503,
                    "good ok\nstuck FAIL: did not answer in time\nfull FAIL: queue full\n");
    sluice_pool_stats st;
    sluice_pool_stats_get(full, &st);
    assert_int_equal(st.dropped, 0); /* the probe never evicted real work */

    http_reply r = http_do(port, "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 200);
    char hv[128];
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_string_equal(hv, "application/json");
    expect_body_has(&r, "{\"ready\":true,\"pools\":[{\"name\":\"good\",\"config\":{\"workers\":2,");
    expect_body_has(&r, "\"overflow\":\"");
    expect_body_has(&r, "\"name\":\"stuck\"");
    expect_body_has(&r, "\"state\":\"running\"");
    expect_body_has(&r, "\"task\":\"downstream-call\"");
    expect_body_has(&r, "\"submitted\":");
    http_free(&r);

    r = http_do(port, "GET", "/debug/pools/stacks", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "pool stuck: 1 workers\n  worker ");
    expect_body_has(&r, " running ");
    expect_body_has(&r, "task=downstream-call\n");
    expect_body_has(&r, "gate_task"); /* the frame the worker is blocked in */
    http_free(&r);

    gate_open(&g);
    assert_int_equal(sluice_pool_drain(stuck, 0, NULL), SLUICE_OK); /* the late probe runs and frees itself */
    assert_int_equal(sluice_admin_remove_pool(a, good), SLUICE_OK);
    assert_int_equal(sluice_admin_remove_pool(a, stuck), SLUICE_OK);
    assert_int_equal(sluice_admin_remove_pool(a, full), SLUICE_OK);
    sluice_admin_stop(a);
    sluice_pool_destroy(good);
    sluice_pool_destroy(stuck);
    sluice_pool_destroy(full);
}

typedef struct evictor {
    sluice_pool *pool;
    _Atomic int done;
} evictor;

/* Waits until the probe sits in the (one-slot) queue, then pushes it out. */
static void *evict_probe(void *arg)
{
    evictor *e = arg;
    for (int i = 0; i < 200000; i++) {
        sluice_pool_stats st;
        sluice_pool_stats_get(e->pool, &st);
        if (st.queue_depth == 1) {
            (void)sluice_pool_submit(e->pool, ok_task, NULL);
            break;
        }
        struct timespec ts = {0, 10000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&e->done, 1);
    return NULL;
}

static _Atomic int admin_pool_abandons;
static void count_pool_abandons(const sluice_abandoned *t, void *user)
{
    (void)t;
    (void)user;
    atomic_fetch_add(&admin_pool_abandons, 1);
}

/* A probe that the pool hands back comes back to the admin (its own
 * on_abandon): the request says why, the pool's abandon handler never sees
 * it, and nothing leaks (ASan). */
static void test_probe_handed_back(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.health_timeout_ns = 5 * SLUICE_NS_PER_SEC;
    sluice_admin *a = start_admin(&cfg);
    unsigned port = sluice_admin_port(a);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "evict";
    pc.workers = 1;
    pc.queue_capacity = 1;
    pc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    pc.abandon_handler = count_pool_abandons;
    sluice_pool *p;
    char err[128];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_OK);
    atomic_store(&admin_pool_abandons, 0);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(p, gate_task, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);

    evictor e = {.pool = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, evict_probe, &e), 0);
    http_reply r = http_do(port, "GET", "/health/pools", NULL);
    pthread_join(th, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "evict FAIL: probe evicted by newer work (queue full)\n");
    http_free(&r);
    assert_int_equal(atomic_load(&admin_pool_abandons), 0);
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    assert_int_equal(st.dropped, 1);

    gate_open(&g);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_OK);
    sluice_admin_stop(a);
    sluice_pool_destroy(p);
}

/* The probe's submit deadline (admin_internal.h) saturates: a health
 * timeout of UINT64_MAX, or any sum past the top, is UINT64_MAX ("for
 * ever"), never a wrapped deadline in the past that a BLOCK pool whose
 * queue just filled would read as due (the probe failing at once with
 * "timed out"); a fake clock's deadline is the next tick, never 0 ("no
 * deadline") and never UINT64_MAX ("never": at the clock's end a probe on
 * a full BLOCK pool waited for ever; it is UINT64_MAX - 1 there, due). */
static void test_probe_deadline_saturates(void **state)
{
    (void)state;
    const uint64_t nows[] = {0, 1, 5 * SLUICE_NS_PER_SEC, UINT64_MAX / 2, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++) {
        uint64_t now = nows[i];
        assert_true(sluice__admin_probe_deadline(now, true, UINT64_MAX) == UINT64_MAX);
        assert_true(sluice__admin_probe_deadline(now, true, UINT64_MAX - now) == UINT64_MAX);
        uint64_t five = sluice__admin_probe_deadline(now, true, 5 * SLUICE_NS_PER_SEC);
        assert_true(five >= now && five != 0);
        assert_true(now > UINT64_MAX - 5 * SLUICE_NS_PER_SEC ? five == UINT64_MAX
                                                             : five == now + 5 * SLUICE_NS_PER_SEC);
        uint64_t fake = sluice__admin_probe_deadline(now, false, UINT64_MAX);
        assert_true(fake == (now == UINT64_MAX ? UINT64_MAX - 1 : now + 1)); /* never UINT64_MAX ("never") */
    }
}

/* All slots held by clients that never finish their request: a new
 * request still gets in (the slowest holder is closed to make room). */
static void test_connection_limit(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.max_connections = 2;
    sluice_admin *a = start_admin(&cfg);
    unsigned port = sluice_admin_port(a);
    int c1 = http_connect(port), c2 = http_connect(port);
    assert_true(c1 >= 0 && c2 >= 0);
    const char *part = "GET /health/live HTTP/1.1\r\n";
    assert_int_equal(write(c1, part, strlen(part)), (ssize_t)strlen(part));
    assert_int_equal(write(c2, part, strlen(part)), (ssize_t)strlen(part));
    for (int i = 0; i < 3; i++) { /* every time, not just once */
        assert_int_equal(http_status(port, "GET", "/health/live", NULL), 200);
    }
    /* At least one of the slow holders was closed by the server. */
    int closed = 0;
    int fds[2] = {c1, c2};
    for (int i = 0; i < 2; i++) {
        struct timeval tv = {0, 200 * 1000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char b[64];
        closed += read(fds[i], b, sizeof b) == 0;
        close(fds[i]);
    }
    assert_true(closed >= 1);
    sluice_admin_stop(a);
}

/* A client that keeps sending a byte now and then is closed once
 * connection_timeout_ns has passed without a complete request, however
 * active it looks (libmicrohttpd's own timeout sees only silence). */
static void test_request_deadline(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.connection_timeout_ns = 300 * SLUICE_NS_PER_MS;
    cfg.sample_interval_ns = 20 * SLUICE_NS_PER_MS;
    sluice_admin *a = start_admin(&cfg);
    int fd = http_connect(sluice_admin_port(a));
    assert_true(fd >= 0);
    const char req[] = "GET /health/live HTTP/1.1\r\nX-Slow: "
                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool closed = false;
    for (size_t i = 0; i < sizeof req - 1 && !closed; i++) { /* at most ~5 s of trickling */
        if (send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
            closed = true;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the client's pace, not a wait for the server */
        char b;
        closed = recv(fd, &b, 1, MSG_DONTWAIT) == 0;
    }
    close(fd);
    assert_true(closed);
    assert_int_equal(http_status(sluice_admin_port(a), "GET", "/health/live", NULL), 200);
    sluice_admin_stop(a);
}

/* A NUL byte in the request target, raw or as %00, is a bad request: it
 * used to end the C string early, so "/health/live\0x" was routed (and a
 * ".." after the NUL went unchecked). */
static void test_nul_in_target(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
#define LINE(s)                                                                                              \
    {                                                                                                        \
        s, sizeof s - 1                                                                                      \
    }
    static const struct {
        const char *text;
        size_t len;
    } lines[] = {
        LINE("GET /health/live\0x HTTP/1.1"), LINE("GET /health/live%00x HTTP/1.1"),
        LINE("GET /\0/../metrics HTTP/1.1"),  LINE("GET /metrics%00/../x HTTP/1.1"),
        LINE("HEAD /health/live\0 HTTP/1.1"), LINE("GET /health/live\0?x=1 HTTP/1.1"),
        LINE("GET /health/live?\0 HTTP/1.1"),
    };
#undef LINE
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char req[256];
        memcpy(req, lines[i].text, lines[i].len);
        const char rest[] = "\r\nHost: x\r\nConnection: close\r\n\r\n";
        memcpy(req + lines[i].len, rest, sizeof rest);
        http_reply r = http_raw(port, req, lines[i].len + sizeof rest - 1);
        if (r.status != 400) {
            fail_msg("request %zu: status %d, want 400:\n%s", i, r.status, r.raw);
        }
        http_free(&r);
    }
    /* %00 in the query string is the query's business (ignored), and a
     * clean request still works on the same server. */
    assert_int_equal(http_status(port, "GET", "/health/live?x=%00", NULL), 200);
    assert_int_equal(http_status(port, "GET", "/health/%6cive", NULL),
                     200); /* percent-decoded to /health/live */
    sluice_admin_stop(a);
}

/* With a token, /debug/... need "Authorization: Bearer <token>"; the
 * health and metrics endpoints never do. */
static void test_token(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    char token[] = "s3cr-et_T0k.en~+/=";
    cfg.token = token;
    sluice_admin *a = start_admin(&cfg);
    token[0] = 'X'; /* copied at start */
    unsigned port = sluice_admin_port(a);
    char hv[256];
    http_reply r = http_do(port, "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(http_header(&r, "WWW-Authenticate", hv, sizeof hv));
    assert_string_equal(hv, "Bearer realm=\"sluice-admin\"");
    assert_null(strstr(r.body, "s3cr")); /* never echoed */
    http_free(&r);
    static const char *const wrong[] = {
        "Authorization: Bearer s3cr-et_T0k.en~+/\r\n",   /* a prefix */
        "Authorization: Bearer s3cr-et_T0k.en~+/==\r\n", /* longer */
        "Authorization: Bearer X3cr-et_T0k.en~+/=\r\n",  /* the caller's buffer after start */
        "Authorization: Basic s3cr-et_T0k.en~+/=\r\n",   "Authorization: Bearer\r\n",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        assert_int_equal(http_status(port, "GET", "/debug/pools/stacks", wrong[i]), 401);
    }
    assert_int_equal(http_status(port, "GET", "/debug/pools", "Authorization: Bearer s3cr-et_T0k.en~+/=\r\n"),
                     200);
    assert_int_equal(
        http_status(port, "GET", "/debug/pools/stacks", "Authorization: bearer s3cr-et_T0k.en~+/=\r\n"), 200);
    const char *open_paths[] = {"/health/live", "/health/ready", "/health/pools", "/metrics"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(http_status(port, "GET", open_paths[i], NULL), 200);
    }
    /* The rule the console reuses: a flagged row needs the token only when
     * the server has one. */
    const sluice__admin_route *row = NULL;
    assert_int_equal(sluice__admin_route_find("GET", "/debug/pools", 12, &row), 200);
    assert_true(sluice__admin_route_requires_token(a, row));
    assert_int_equal(sluice__admin_route_find("GET", "/health/live", 12, &row), 200);
    assert_false(sluice__admin_route_requires_token(a, row));
    sluice_admin_stop(a);

    sluice_admin *b = start_admin(NULL); /* no token: /debug open */
    assert_int_equal(sluice__admin_route_find("GET", "/debug/pools", 12, &row), 200);
    assert_false(sluice__admin_route_requires_token(b, row));
    assert_int_equal(http_status(sluice_admin_port(b), "GET", "/debug/pools", NULL), 200);
    sluice_admin_stop(b);

    /* Bad tokens are refused at start, naming the problem, not the token. */
    char err[256];
    sluice_admin *c = NULL;
    sluice_admin_config_init(&cfg);
    cfg.address = "127.0.0.1:0";
    cfg.token = "has space";
    assert_int_equal(sluice_admin_start(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "token: character 4 (byte 0x20) is not allowed"));
    char longtok[SLUICE_ADMIN_TOKEN_MAX + 2];
    memset(longtok, 'a', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    cfg.token = longtok;
    assert_int_equal(sluice_admin_start(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "token: at most 256 characters"));
    longtok[SLUICE_ADMIN_TOKEN_MAX] = '\0'; /* the longest allowed */
    assert_int_equal(sluice_admin_start(&cfg, &c, err, sizeof err), SLUICE_OK);
    char auth[SLUICE_ADMIN_TOKEN_MAX + 64];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", longtok);
    assert_int_equal(http_status(sluice_admin_port(c), "GET", "/debug/pools", auth), 200);
    sluice_admin_stop(c);
}

static void test_bind_errors(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", sluice_admin_port(a));
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.address = addr;
    sluice_admin *b = NULL;
    char err[256];
    assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_EBUSY);
    assert_null(b);
    char want[128];
    snprintf(want, sizeof want, "%s: address already in use", addr);
    assert_string_equal(err, want);
    cfg.address = "localhost:80";
    assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "not a numeric IPv4 or IPv6 address"));
    cfg.address = "127.0.0.1:http";
    assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "port 'http' is not a number"));
    cfg.address = "127.0.0.1:70000";
    assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    cfg.address = "9464"; /* a bare port: refused, as in service.listen (src/base/rules.h) */
    assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "want host:port"));
    cfg.address = "[::1]:0";
    if (sluice_admin_start(&cfg, &b, err, sizeof err) == SLUICE_OK) { /* IPv6 may be off in a container */
        assert_true(sluice_admin_port(b) > 0);
        char want6[64];
        snprintf(want6, sizeof want6, "[::1]:%u", sluice_admin_port(b));
        assert_string_equal(sluice_admin_address(b), want6);
        assert_true(sluice_admin_is_loopback(b));
        sluice_admin_stop(b);
    }
    /* The real bound address, and whether it is loopback only. */
    snprintf(want, sizeof want, "127.0.0.1:%u", sluice_admin_port(a));
    assert_string_equal(sluice_admin_address(a), want);
    assert_true(sluice_admin_is_loopback(a));
    static const struct {
        const char *address, *host;
        bool loopback;
    } binds[] = {
        {":0", "127.0.0.1", true}, {"127.0.0.2:0", "127.0.0.2", true}, {"0.0.0.0:0", "0.0.0.0", false}};
    for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++) {
        cfg.address = binds[i].address;
        assert_int_equal(sluice_admin_start(&cfg, &b, err, sizeof err), SLUICE_OK);
        snprintf(want, sizeof want, "%s:%u", binds[i].host, sluice_admin_port(b));
        assert_string_equal(sluice_admin_address(b), want);
        assert_true(sluice_admin_is_loopback(b) == binds[i].loopback);
        sluice_admin_stop(b);
    }
    assert_string_equal(sluice_admin_address(NULL), "");
    assert_false(sluice_admin_is_loopback(NULL));
    sluice_admin_stop(a);
    sluice_admin_stop(NULL);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (size_t at = 0; len && hay[at]; at++) {
        n += strncmp(hay + at, needle, len) == 0;
    }
    return n;
}

/* A server given a service (cfg.service) serves the pools registered with
 * the service, before and after it started, without add_pool; /metrics is
 * the service's registry with each pool once; /health/ready follows the
 * service's readiness. Both teardown orders are safe: server first, or
 * service first (the server then lets go of the pools and forgets it). */
static void test_serves_a_service(void **state)
{
    (void)state;
    for (int service_first = 0; service_first < 2; service_first++) {
        sluice_service *svc = make_service();
        add_small_pool(svc, "early");
        sluice_admin *a = start_admin_serving(svc, 0);
        assert_ptr_equal(sluice_admin_metrics(a), sluice_service_metrics(svc));
        unsigned port = sluice_admin_port(a);
        add_small_pool(svc, "late");

        http_reply r = http_do(port, "GET", "/health/pools", NULL);
        assert_int_equal(r.status, 200);
        expect_body_has(&r, "early");
        expect_body_has(&r, "late");
        http_free(&r);
        r = http_do(port, "GET", "/metrics", NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(count_of(r.body, "pool_capacity{name=\"early\"}"), 1);
        assert_int_equal(count_of(r.body, "pool_capacity{name=\"late\"}"), 1);
        http_free(&r);

        /* A service starts not ready; the server follows it. */
        assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 503);
        sluice_service_set_ready(svc, true);
        assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 200);

        if (service_first) {
            sluice_service_destroy(svc);
            r = http_do(port, "GET", "/health/pools", NULL);
            assert_int_equal(r.status, 200);
            assert_null(strstr(r.body, "early"));
            http_free(&r);
            sluice_admin_stop(a);
        } else {
            sluice_admin_stop(a);
            sluice_service_destroy(svc);
        }
    }
}

/* A served service's health checks: one line each in /health/ready and
 * /health/pools; DEGRADED keeps 200, FAIL turns both 503; a removed check
 * is gone. */
static _Atomic int check_state;
static sluice_health_state test_check(void *user, char *line, size_t len)
{
    (void)user;
    int st = atomic_load(&check_state);
    snprintf(line, len, "redis %s", st == SLUICE_HEALTH_OK ? "up" : "down");
    return (sluice_health_state)st;
}

static void test_service_checks(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    add_small_pool(svc, "p");
    int user = 0;
    assert_int_equal(sluice_service_add_check(svc, "cluster", test_check, &user), SLUICE_OK);
    assert_int_equal(sluice_service_add_check(svc, "cluster", test_check, &user), SLUICE_EBUSY);
    assert_int_equal(sluice_service_add_check(svc, "", test_check, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_service_add_check(svc, "a-name-of-thirty-two-characters!", test_check, NULL),
                     SLUICE_EINVAL);
    sluice_service_set_ready(svc, true);
    sluice_admin *a = start_admin_serving(svc, 0);
    unsigned port = sluice_admin_port(a);
    static const struct {
        sluice_health_state st;
        int status;
        const char *line;
    } cases[] = {
        {SLUICE_HEALTH_OK, 200, "cluster ok: redis up\n"},
        {SLUICE_HEALTH_DEGRADED, 200, "cluster DEGRADED: redis down\n"},
        {SLUICE_HEALTH_FAIL, 503, "cluster FAIL: redis down\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        atomic_store(&check_state, (int)cases[i].st);
        const char *paths[] = {"/health/ready", "/health/pools"};
        for (size_t k = 0; k < 2; k++) {
            http_reply r = http_do(port, "GET", paths[k], NULL);
            assert_int_equal(r.status, cases[i].status);
            expect_body_has(&r, cases[i].line);
            expect_body_has(&r, "p ok");
            http_free(&r);
        }
    }
    assert_int_equal(sluice_service_remove_check(svc, &user), SLUICE_OK);
    assert_int_equal(sluice_service_remove_check(svc, &user), SLUICE_ENOENT);
    http_reply r = http_do(port, "GET", "/health/pools", NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "cluster"));
    http_free(&r);
    /* At most SLUICE_SERVICE_MAX_CHECKS. */
    int users[SLUICE_SERVICE_MAX_CHECKS + 1];
    for (int i = 0; i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        assert_int_equal(sluice_service_add_check(svc, "c", test_check, &users[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_service_add_check(svc, "c", test_check, &users[SLUICE_SERVICE_MAX_CHECKS]),
                     SLUICE_EOVERFLOW);
    sluice_admin_stop(a);
    sluice_service_destroy(svc);
}

/* Worker threads that cannot start (here: a stack no mmap can give, as
 * thread limits would) are said on the pool's /health/pools line, served
 * through a service (issue 12.11). */
static void test_health_pools_start_failures(void **state)
{
    (void)state;
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = quiet_log;
    sc.drain_budget_ns = 100 * SLUICE_NS_PER_MS; /* the starved pool never drains by itself */
    sluice_service *svc = NULL;
    assert_int_equal(sluice_service_create(&sc, &svc, NULL, 0), SLUICE_OK);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "starved";
    pc.workers = 2;
    pc.queue_capacity = 4;
    pc.stack_size = (size_t)1 << 46; /* 64 TiB: pthread_create fails */
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, NULL, NULL, 0), SLUICE_OK);
    pc.name = "fine";
    pc.stack_size = 0;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, NULL, NULL, 0), SLUICE_OK);
    /* 2 s: "fine" must start a worker and run its probe within it (200 ms
     * was a window a loaded machine could miss); the request waits it out
     * for "starved", whose probe never runs. */
    sluice_admin *a = start_admin_serving(svc, 2 * SLUICE_NS_PER_SEC);
    http_reply r = http_do(sluice_admin_port(a), "GET", "/health/pools", NULL);
    assert_int_equal(r.status, 503);
    expect_body_has(&r, "starved FAIL: ");
    expect_body_has(&r, "(worker starts failed: ");
    expect_body_has(&r, "fine ok\n");
    http_free(&r);
    sluice_admin_stop(a);
    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    sluice_service_run(svc, &rep);
    sluice_service_destroy(svc);
}

static int debug_nop(void *arg)
{
    (void)arg;
    return 0;
}

/* /debug/pools of a fair pool: the tenancy summary, each tenant's queued
 * and running counts, weight and limits (issue 13), and the forgotten
 * tenants' counters summed. */
static void test_debug_tenants(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "fairpool";
    pc.workers = 1;
    pc.queue_capacity = 16;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.idle_forget_ns = 1; /* forgotten at the next look once idle */
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    /* A tenant that comes, runs one task and is forgotten: its counts
     * move to the forgotten record the page shows. */
    sluice_submit_opts so = {.tenant_name = "passing"};
    assert_int_equal(sluice_pool_submit_ex(p, debug_nop, NULL, &so), SLUICE_OK);
    sluice_tenant_stats fg;
    WAIT_FOR((sluice_pool_tenants_snapshot(p, NULL, 0, &fg), fg.completed == 1),
             "the passing tenant forgotten");
    sluice_tenant_config tc = {.weight = 3, .queued_limit = 5, .running_limit = 1, .strict = true};
    assert_int_equal(sluice_pool_tenant_set(p, "acme", &tc, NULL, 0), SLUICE_OK);
    sluice_admin *a = start_admin(NULL);
    assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_OK);
    http_reply r = http_do(sluice_admin_port(a), "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "\"queue_discipline\":\"fair\"");
    /* acme, and the pool's own "default" tenant (tasks that name none). */
    expect_body_has(&r, "\"tenancy\":{\"tracked\":2,\"configured\":2,");
    expect_body_has(&r, "\"tenants\":[{\"name\":\"acme\",\"configured\":true,\"shard\":false,\"weight\":3,"
                        "\"queued_limit\":5,\"running_limit\":1,\"strict\":true,\"overflow\":\"reject\","
                        "\"queued\":0,\"running\":0,");
    expect_body_has(&r, "],\"tenants_omitted\":0,\"tenants_forgotten\":{\"submitted\":1,\"started\":1,"
                        "\"completed\":1,\"failed\":0,\"panicked\":0,\"dropped\":0,\"rejected\":0,\"shed\":0,"
                        "\"abandoned\":0}}");
    http_free(&r);
    assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_OK);
    sluice_admin_stop(a);
    sluice_pool_destroy(p);
}

static bool probe_state(sluice_service *svc, sluice_pool *pool, sluice_fake_clock *clk, bool want_healthy)
{
    sluice_fake_clock_advance(clk, 50 * SLUICE_NS_PER_MS);
    sluice_pool_control_stats cs;
    if (sluice_service_control_stats(svc, pool, &cs) != SLUICE_OK) {
        return false;
    }
    return cs.probes > 0 && cs.healthy == want_healthy;
}

/* A pool whose scheduled probes fail (issue 14 item 4: its only worker is
 * stuck) is FAIL in /health/pools and, with probe_affects_ready, turns
 * /health/ready 503; /metrics has the probe families and the limit gauge;
 * once a probe runs again both are back to 200. The service's control
 * thread ticks the controller; the pool's clock is fake. */
static void test_scheduled_probe_unhealthy(void **state)
{
    (void)state;
    sluice_fake_clock clk;
    sluice_fake_clock_init(&clk, 1000 * SLUICE_NS_PER_SEC);
    sluice_service *svc = make_service();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "probed";
    pc.workers = 1;
    pc.queue_capacity = 8;
    pc.clock = &clk.clock;
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &pool, NULL, 0), SLUICE_OK);
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.probe_every_ns = 200 * SLUICE_NS_PER_MS;
    cc.probe_timeout_ns = 100 * SLUICE_NS_PER_MS;
    cc.probe_affects_ready = true;
    char err[200] = "";
    assert_int_equal(sluice_service_set_control(svc, pool, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_set_control(svc, pool, &cc, err, sizeof err), SLUICE_EBUSY);
    sluice_admin *a = start_admin_serving(svc, 0);
    unsigned port = sluice_admin_port(a);
    sluice_service_set_ready(svc, true);

    WAIT_FOR(probe_state(svc, pool, &clk, true), "a first probe ran");
    gate *g = gate_new();
    assert_int_equal(sluice_pool_submit(pool, gate_task, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the worker is stuck");
    WAIT_FOR(probe_state(svc, pool, &clk, false), "a probe failed");

    expect_get_has(port, "/health/pools", 503, "probed FAIL: scheduled probe failing");
    expect_get_has(port, "/health/ready", 503, "probed probe failing");
    http_reply r = http_do(port, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "pool_probe_failures_total{name=\"probed\"}");
    expect_body_has(&r, "pool_probe_duration_seconds_count{name=\"probed\"}");
    expect_body_has(&r, "pool_probe_healthy{name=\"probed\"} 0");
    expect_body_has(&r, "pool_concurrency_limit{name=\"probed\"} 1");
    http_free(&r);

    gate_open(g);
    WAIT_FOR(probe_state(svc, pool, &clk, true), "a probe ran again");
    assert_int_equal(http_status(port, "GET", "/health/pools", NULL), 200);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 200);
    sluice_admin_stop(a);
    sluice_service_destroy(svc);
    gate_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_function),
        cmocka_unit_test(test_request_waiting_peek),
        cmocka_unit_test(test_routes_match_docs),
        cmocka_unit_test(test_routes_and_errors),
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_registry_pool_clash),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_ready_weights),
        cmocka_unit_test(test_health_pools_and_debug),
        cmocka_unit_test(test_probe_handed_back),
        cmocka_unit_test(test_probe_deadline_saturates),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_request_deadline),
        cmocka_unit_test(test_nul_in_target),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_bind_errors),
        cmocka_unit_test(test_serves_a_service),
        cmocka_unit_test(test_scheduled_probe_unhealthy),
        cmocka_unit_test(test_service_checks),
        cmocka_unit_test(test_health_pools_start_failures),
        cmocka_unit_test(test_debug_tenants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
